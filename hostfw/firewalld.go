// Package hostfw is what nsrun knows of the host's own firewalls, beside
// its own rules: firewalld, talked to over D-Bus, ufw's configuration,
// Docker's chains and other programs' nftables tables, read; and the
// events that say one of them changed.
package hostfw

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// firewalld's D-Bus names (firewalld.dbus(5)).
const (
	fwName       = "org.fedoraproject.FirewallD1"
	fwPath       = dbus.ObjectPath("/org/fedoraproject/FirewallD1")
	fwZone       = fwName + ".zone"
	fwConfigPath = dbus.ObjectPath("/org/fedoraproject/FirewallD1/config")
	fwConfig     = fwName + ".config"
)

// Zone is the firewalld zone nsrun puts its host-side links in, at
// runtime only, as netavark does: its target is ACCEPT, so what the
// namespaces send to the host and through it passes firewalld whatever
// zone the uplinks are in. What reaches the namespaces is still nsrun's
// to decide: its own rules drop new connections that no published port
// DNAT'd, and a drop in any table wins.
const Zone = "trusted"

// SystemBus is the system bus socket; when it is missing, no firewalld runs.
const SystemBus = "/run/dbus/system_bus_socket"

// Firewalld is firewalld as found.
type Firewalld struct {
	Running bool   `json:"running"`
	Version string `json:"version,omitempty"`
	Backend string `json:"backend,omitempty"` // nftables or iptables
	// DefaultZone takes the interfaces that are in no zone.
	DefaultZone string `json:"default_zone,omitempty"`
	// StrictForwardPorts (firewalld 2.3 and later) drops DNAT'd traffic
	// that firewalld's own forward ports did not make.
	StrictForwardPorts bool `json:"strict_forward_ports,omitempty"`
	// Interfaces maps each interface bound to a zone to that zone.
	Interfaces map[string]string `json:"interfaces"`
}

// ZoneOf is the zone an interface's traffic meets: its own, or else the
// default zone.
func (f Firewalld) ZoneOf(iface string) string {
	if z := f.Interfaces[iface]; z != "" {
		return z
	}
	return f.DefaultZone
}

// Unbound lists the links that are not in Zone.
func (f Firewalld) Unbound(links []string) []string {
	var out []string
	for _, l := range links {
		if f.Interfaces[l] != Zone {
			out = append(out, l)
		}
	}
	return out
}

// Zoned lists the interfaces in Zone, sorted.
func (f Firewalld) Zoned() []string {
	var out []string
	for iface, z := range f.Interfaces {
		if z == Zone {
			out = append(out, iface)
		}
	}
	slices.Sort(out)
	return out
}

// FirewalldBus talks to the real firewalld over the system bus, one
// connection per call: firewalld and the bus may restart between calls.
type FirewalldBus struct {
	// Socket is the system bus socket; "" is SystemBus.
	Socket string
}

// connect connects to the system bus; errNoBus when none answers.
func (b FirewalldBus) connect(ctx context.Context) (*dbus.Conn, error) {
	socket := b.Socket
	if socket == "" {
		socket = SystemBus
	}
	if _, err := os.Stat(socket); err != nil {
		return nil, errNoBus
	}
	conn, err := dbus.Connect("unix:path="+socket, dbus.WithContext(ctx))
	if err != nil {
		// A socket no bus answers on (left by one that was killed): no
		// bus, and so no firewalld.
		return nil, errNoBus
	}
	return conn, nil
}

var errNoBus = errors.New("no system bus")

// running reports whether firewalld owns its name on the bus.
func running(ctx context.Context, conn *dbus.Conn) (bool, error) {
	var has bool
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, fwName).Store(&has)
	return has, err
}

// Read finds whether firewalld runs, and if so its version, backend,
// default zone and the zone of every bound interface.
func (b FirewalldBus) Read(ctx context.Context) (Firewalld, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	conn, err := b.connect(ctx)
	if err != nil {
		return Firewalld{}, nil // no bus, so no firewalld
	}
	defer conn.Close()
	return read(ctx, conn)
}

func read(ctx context.Context, conn *dbus.Conn) (Firewalld, error) {
	if ok, err := running(ctx, conn); err != nil || !ok {
		return Firewalld{}, err
	}
	f := Firewalld{Running: true, Interfaces: map[string]string{}}
	obj := conn.Object(fwName, fwPath)
	config := conn.Object(fwName, fwConfigPath)
	v, err := obj.GetProperty(fwName + ".version")
	if err != nil {
		return Firewalld{}, firewalldErr("reading its version", err)
	}
	f.Version, _ = v.Value().(string)
	if v, err = config.GetProperty(fwConfig + ".FirewallBackend"); err == nil {
		f.Backend, _ = v.Value().(string)
	}
	// Only firewalld 2.3 and later has it.
	if v, err = config.GetProperty(fwConfig + ".StrictForwardPorts"); err == nil {
		s, _ := v.Value().(string)
		f.StrictForwardPorts = strings.EqualFold(s, "yes")
	}
	if err := obj.CallWithContext(ctx, fwName+".getDefaultZone", 0).Store(&f.DefaultZone); err != nil {
		return Firewalld{}, firewalldErr("reading its default zone", err)
	}
	var active map[string]map[string][]string
	if err := obj.CallWithContext(ctx, fwZone+".getActiveZones", 0).Store(&active); err != nil {
		return Firewalld{}, firewalldErr("reading its active zones", err)
	}
	for zone, bound := range active {
		for _, iface := range bound["interfaces"] {
			f.Interfaces[iface] = zone
		}
	}
	return f, nil
}

// callTimeout bounds one exchange with firewalld: a reload makes it
// answer late.
const callTimeout = 20 * time.Second

// Bind puts links in Zone at runtime, moving those that are in another
// zone. Without firewalld it does nothing.
func (b FirewalldBus) Bind(ctx context.Context, links []string) error {
	return b.change(ctx, links, func(obj dbus.BusObject, f Firewalld, link string) error {
		switch f.Interfaces[link] {
		case Zone:
			return nil
		case "":
			return obj.CallWithContext(ctx, fwZone+".addInterface", 0, Zone, link).Err
		default:
			return obj.CallWithContext(ctx, fwZone+".changeZoneOfInterface", 0, Zone, link).Err
		}
	})
}

// Unbind takes out of Zone those of the links that are in it. Without
// firewalld it does nothing.
func (b FirewalldBus) Unbind(ctx context.Context, links []string) error {
	return b.change(ctx, links, func(obj dbus.BusObject, f Firewalld, link string) error {
		if f.Interfaces[link] != Zone {
			return nil
		}
		return obj.CallWithContext(ctx, fwZone+".removeInterface", 0, Zone, link).Err
	})
}

func (b FirewalldBus) change(ctx context.Context, links []string, each func(dbus.BusObject, Firewalld, string) error) error {
	if len(links) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	conn, err := b.connect(ctx)
	if err != nil {
		return nil // no bus, so no firewalld
	}
	defer conn.Close()
	f, err := read(ctx, conn)
	if err != nil || !f.Running {
		return err
	}
	obj := conn.Object(fwName, fwPath)
	var errs []error
	for _, link := range links {
		if err := each(obj, f, link); err != nil && !benign(err) {
			errs = append(errs, firewalldErr("changing the zone of "+link, err))
		}
	}
	return errors.Join(errs...)
}

// benign are firewalld's answers that mean it is already as asked.
func benign(err error) bool {
	var e dbus.Error
	if !errors.As(err, &e) || len(e.Body) == 0 {
		return false
	}
	msg, _ := e.Body[0].(string)
	return slices.ContainsFunc([]string{"ZONE_ALREADY_SET", "UNKNOWN_INTERFACE", "NOT_ENABLED"}, func(code string) bool {
		return strings.HasPrefix(msg, code)
	})
}

func firewalldErr(what string, err error) error {
	return fmt.Errorf("firewalld: %s: %w; check that it runs (firewall-cmd --state)", what, err)
}
