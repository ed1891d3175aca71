package specs

import (
	"fmt"
	"slices"
	"strconv"
)

// ResolveExec resolves the names of every exec grant to ids, with the
// lookups of the system's user and group databases (the caller's: specs
// reads nothing itself). A numeric id stands for itself; a name that does
// not exist is a problem at its line, as any other of the spec.
func ResolveExec(s *Spec, user, group func(name string) (uint32, error)) error {
	d := &problems{file: s.File}
	resolve := func(g *ExecGrant, path string) {
		if g == nil {
			return
		}
		g.UIDs = ids(d, g.Users, g.userPos, join(path, "users"), "user", user)
		g.GIDs = ids(d, g.Groups, g.groupPos, join(path, "groups"), "group", group)
	}
	resolve(s.Exec, "exec")
	for _, ns := range s.Namespaces {
		resolve(ns.Exec, join(join("namespaces", ns.Name), "exec"))
	}
	return d.err()
}

func ids(d *problems, names []string, pos []position, path, what string, lookup func(string) (uint32, error)) []uint32 {
	var out []uint32
	for i, name := range names {
		if n, err := strconv.ParseUint(name, 10, 32); err == nil {
			out = append(out, uint32(n))
			continue
		}
		id, err := lookup(name)
		if err != nil {
			var at position
			if i < len(pos) {
				at = pos[i]
			}
			d.add(at, index(path, i), "%s %s does not exist on this host; create it, or give a numeric id (%v)", what, quote(name), err)
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// String lists a grant for people: "users alice, 1000; groups nsrun".
func (g *ExecGrant) String() string {
	if g == nil || len(g.Users)+len(g.Groups) == 0 {
		return "nobody"
	}
	s := ""
	if len(g.Users) > 0 {
		s = fmt.Sprintf("users %v", g.Users)
	}
	if len(g.Groups) > 0 {
		if s != "" {
			s += "; "
		}
		s += fmt.Sprintf("groups %v", g.Groups)
	}
	return s
}
