package specs

import (
	"encoding/json"
	"strings"
)

// SchemaID is where the schema is published, as the examples' first line
// names it for editors.
const SchemaID = "https://raw.githubusercontent.com/nsrun/nsrun/main/schemas/nsrun.schema.json"

// Patterns of the schema, in the syntax JSON Schema and Go's regexp share.
const (
	portNumber = `(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})`
	portRangeP = portNumber + `(-` + portNumber + `)?`
	octet      = `(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])`
	ipv4       = `(` + octet + `\.){3}` + octet
	ipv6       = `[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}` // the shape only; nsrun checks the rest
	shortPort  = `^(` + ipv4 + `:|\[` + ipv6 + `\]:)?` + portRangeP + `:` + portRangeP + `(/(tcp|udp))?$`
	cidr       = `^` + ipv4 + `/([0-9]|[12][0-9]|3[0-2])$`
	cidr6      = `^` + ipv6 + `/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$`
	userPart   = `([A-Za-z_][A-Za-z0-9_.-]{0,30}\$?|[0-9]{1,10})`
	duration   = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	rate       = `^[0-9]+(\.[0-9]+)? ?([KkMmGgTt]i?)?([Bb][Ii][Tt]|[Bb][Pp][Ss])$`
)

// The schema's descriptions of each key, which editors show on hover.
// TestSchemaKnowsEveryKey checks that they are the decoder's keys.
var (
	specProps = map[string]any{
		"name": str("The project's name: lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 32 characters. Default: the spec file's name without its extension.",
			`^[a-z0-9][a-z0-9_-]{0,31}$`),
		"subnet":  str("The IPv4 pool for automatic addresses, e.g. 10.203.0.0/16; each namespace without an address gets a /30 of it, chosen from a hash of its name. Default: the first of 10.203.0.0/16 ... 10.210.0.0/16 that overlaps no host route.", cidr),
		"ipv6":    map[string]any{"description": "Give every namespace an IPv6 address too, and publish ports given without a host address on IPv6 as well (as Docker does). Default: false.", "type": "boolean"},
		"subnet6": str("The IPv6 pool for automatic IPv6 addresses (with ipv6: true), /16 to /64, e.g. fd12:3456:789a::/48; each namespace gets a /64 of it, chosen from a hash of its name, the host side ::1, the namespace ::2. Default: a unique local /48 derived from /etc/machine-id that overlaps no host route.", cidr6),
		"exec": map[string]any{"$ref": "#/$defs/exec",
			"description": "Who may run nsrun exec without root in every namespace of the project, as themselves (nsrun-exec installed with its capabilities: see docs/security.md). Default: nobody."},
		"networks": map[string]any{
			"description":          "The project's networks, by name (letters, digits, '.', '_' and '-', at most 32 characters), as in docker compose: two namespaces reach each other's addresses directly if and only if they share a network; namespaces of other projects never do, except on an external network. A namespace without networks is on the network \"default\", which need not be declared.",
			"type":                 "object",
			"propertyNames":        map[string]any{"pattern": `^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`},
			"additionalProperties": map[string]any{"$ref": "#/$defs/network"},
		},
		"namespaces": map[string]any{
			"description":          "The network namespaces, by name (the name `ip netns list` shows): letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters. At least one.",
			"type":                 "object",
			"minProperties":        1,
			"propertyNames":        map[string]any{"pattern": `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`},
			"additionalProperties": map[string]any{"$ref": "#/$defs/namespace"},
		},
	}
	namespaceProps = map[string]any{
		"address":  str("The namespace side's IPv4 address with its prefix length, e.g. 10.203.1.2/24; the host side of the link gets the first usable address of it. Default: a /30 from subnet.", cidr),
		"address6": str("The namespace side's IPv6 address with its prefix length (with ipv6: true), e.g. fd00:1:2:3::2/64; the host side gets ::1 of the prefix. Default: a /64 from subnet6.", cidr6),
		"egress":   map[string]any{"description": "Whether the namespace may reach beyond the host (masqueraded). With false it reaches the host and the namespaces it shares a network with only. Default: true.", "type": "boolean"},
		"networks": map[string]any{
			"description": "The networks the namespace is on, declared under networks: at the top. Default: [default]. [] is on none: no namespace reaches it directly, only its published ports.",
			"type":        "array",
			"uniqueItems": true,
			"items":       map[string]any{"type": "string", "pattern": `^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`},
		},
		"ports": map[string]any{
			"description": "Host ports published onto ports inside the namespace, as docker's -p: \"HOST_PORT:PORT\" (with ipv6: true on both families), \"HOST_IP:HOST_PORT:PORT/udp\", \"[::1]:HOST_PORT:PORT\" (IPv6 in brackets), ranges \"7000-7002:8000-8002\", or the long form with compose's names.",
			"type":        "array",
			"items":       map[string]any{"$ref": "#/$defs/port"},
		},
		"exec": map[string]any{"$ref": "#/$defs/exec",
			"description": "Who may run nsrun exec without root in this namespace; replaces the project's exec (exec: {} grants nobody)."},
		"resources": map[string]any{"$ref": "#/$defs/resources",
			"description": "Limits on what everything that runs in the namespace uses together (its processes and nsrun exec's), enforced by a cgroup of its own. Default: none."},
		"bandwidth": object("Bandwidth limits of the namespace's link, in tc's units: bit, kbit, mbit, gbit (or kibit... for binary multiples), or bps, kbps, mbps, gbps for bytes per second. Default: none.", map[string]any{
			"ingress": str("What goes into the namespace, at most, e.g. 20mbit.", rate),
			"egress":  str("What comes out of the namespace, at most, e.g. 10mbit.", rate),
		}),
		"netem": object("Delay and loss added to what leaves the namespace, by the kernel's sch_netem (up refuses it on a kernel without). Default: none.", map[string]any{
			"delay":  str("Added to each packet, e.g. 20ms.", duration),
			"jitter": str("The delay varies by up to this either way, e.g. 5ms (with delay).", duration),
			"loss":   map[string]any{"description": "Packets dropped at random, in percent, e.g. 1%.", "type": []string{"string", "number"}, "pattern": `^[0-9]+(\.[0-9]+)?%?$`},
		}),
		"run": map[string]any{
			"description": "The processes to run inside the namespace, kept running by nsrun's supervisor.",
			"type":        "array",
			"items":       map[string]any{"$ref": "#/$defs/process"},
		},
	}
	portProps = map[string]any{
		"published": portOrRange("The host port, or a range \"7000-7002\"."),
		"target":    portOrRange("The port inside the namespace, or a range as long as published's."),
		"protocol":  map[string]any{"description": "tcp (default) or udp.", "enum": []string{"tcp", "udp"}},
		"host_ip":   str("The host address the port is published on: 0.0.0.0 for every IPv4 address, :: for every IPv6 one, 127.0.0.1 or ::1 for this machine only, or one of the host's addresses. Default: every address (both families with ipv6: true).", `^(`+ipv4+`|`+ipv6+`)$`),
	}
	processProps = map[string]any{
		"name": str("The process's name in status and logs: letters, digits, '.', '_' and '-'. Default: the command's base name.", `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`),
		"command": map[string]any{
			"description": "A list is exec'd directly; a string is run by /bin/sh -c.",
			"oneOf": []any{
				map[string]any{"type": "string", "pattern": `\S`},
				map[string]any{"type": "array", "minItems": 1,
					"prefixItems": []any{map[string]any{"type": []string{"string", "number"}, "pattern": `\S`}},
					"items":       map[string]any{"type": []string{"string", "number"}}},
			},
		},
		"workdir": str("The directory the process starts in: absolute, or relative to the spec file's directory. Default: the spec file's directory.", `.`),
		"env": map[string]any{
			"description":          "Environment variables added to the process's environment.",
			"type":                 "object",
			"propertyNames":        map[string]any{"pattern": "^[^=\u0000]+$"},
			"additionalProperties": map[string]any{"type": []string{"string", "number", "boolean", "null"}},
		},
		"user": map[string]any{
			"description": "Who the process runs as: a user name or uid, optionally :group or :gid. Default: root.",
			"oneOf": []any{
				map[string]any{"type": "string", "pattern": `^` + userPart + `(:` + userPart + `)?$`},
				map[string]any{"type": "integer", "minimum": 0, "maximum": 4294967294},
			},
		},
		"restart": map[string]any{"description": "When the supervisor restarts the process: no (default), on-failure (a non-zero exit or a signal), always.",
			"enum": []string{"no", "on-failure", "always"}},
		"resources": map[string]any{"$ref": "#/$defs/resources",
			"description": "Limits on this process and its children, each at most its namespace's. Default: the namespace's alone."},
		"ready": map[string]any{
			"description":          "up waits until this port accepts a connection inside the namespace.",
			"type":                 "object",
			"properties":           readyProps,
			"required":             []string{"tcp"},
			"additionalProperties": false,
		},
		"health": map[string]any{
			"description":          "A check the supervisor runs inside the namespace for as long as the process runs: exactly one of http, tcp and command. Without ready, up waits for its first healthy result.",
			"type":                 "object",
			"properties":           healthProps,
			"oneOf":                []any{map[string]any{"required": []string{"http"}}, map[string]any{"required": []string{"tcp"}}, map[string]any{"required": []string{"command"}}},
			"additionalProperties": false,
		},
		"depends_on": map[string]any{
			"description": "Processes that must be ready (and healthy, if they have a health check) before this one starts, as NAMESPACE/PROCESS, or PROCESS of the same namespace.",
			"type":        "array",
			"uniqueItems": true,
			"items":       map[string]any{"type": "string", "pattern": `^([A-Za-z0-9][A-Za-z0-9._-]{0,63}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`},
		},
	}
	healthProps = map[string]any{
		"http": str("GET this path (on the ready port, else the namespace's first published TCP port) or http://ADDRESS:PORT/PATH URL inside the namespace (127.0.0.1 is its loopback); a 2xx or 3xx answer is healthy.", `^(/|http://)`),
		"tcp":  port("A TCP port that must accept a connection inside the namespace."),
		"command": map[string]any{
			"description": "A command run inside the namespace as the process's user; exit status 0 is healthy. A list is exec'd directly; a string is run by /bin/sh -c.",
			"oneOf": []any{
				map[string]any{"type": "string", "pattern": `\S`},
				map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"type": []string{"string", "number"}}},
			},
		},
		"interval":     str("Time between the end of a check and the next, whole seconds from 1s to 1h. Default: 10s.", duration),
		"timeout":      str("A check that takes longer fails, whole seconds from 1s to 1h. Default: 2s.", duration),
		"retries":      map[string]any{"description": "Consecutive failures that make the process unhealthy. Default: 3.", "type": "integer", "minimum": 1, "maximum": 100},
		"start_period": str("Failures in this time after the start do not count, whole seconds up to 1h. Default: 0s.", duration),
		"on_failure":   map[string]any{"description": "What the supervisor does once the process is unhealthy: none (report it, the default), restart, or stop.", "enum": []string{"none", "restart", "stop"}},
	}
	execProps = map[string]any{
		"users":  idList("Users, by name or numeric uid."),
		"groups": idList("Groups, by name or numeric gid: their members may."),
	}
	networkProps = map[string]any{
		"external": map[string]any{"description": "Share the network with every project on this host that declares an external network of the same name (compose's external: true). Default: false.", "type": "boolean"},
	}
	resourceProps = map[string]any{
		"memory": map[string]any{"description": "Memory, in bytes or with a binary unit as in compose: 256M, 1G, 512MiB; at least 6M. Past it the kernel's OOM killer ends a process.",
			"oneOf": []any{map[string]any{"type": "string", "pattern": `^[0-9]+(\.[0-9]+)? ?([kKmMgGtT]i?[bB]?|[bB])?$`}, map[string]any{"type": "integer", "minimum": 6291456}}},
		"cpus": map[string]any{"description": "CPU time, in cores: 0.5 is half of one core, 2 is two (a quota per 100 ms, as docker --cpus).", "type": "number", "minimum": 0.01, "maximum": 1024},
		"pids": map[string]any{"description": "How many processes and threads may exist at once; a fork beyond fails.", "type": "integer", "minimum": 1, "maximum": 4194304},
	}
	readyProps = map[string]any{
		"tcp":     port("The TCP port that accepts connections once the process is ready."),
		"timeout": str("How long up waits, a duration such as 30s or 2m, at most 1h. Default: 30s.", duration),
	}
)

func str(desc, pattern string) map[string]any {
	return map[string]any{"description": desc, "type": "string", "pattern": pattern}
}

func idList(desc string) map[string]any {
	return map[string]any{"description": desc, "type": "array", "items": map[string]any{"oneOf": []any{
		map[string]any{"type": "string", "pattern": `^` + userPart + `$`},
		map[string]any{"type": "integer", "minimum": 0, "maximum": 4294967294},
	}}}
}

func port(desc string) map[string]any {
	return map[string]any{"description": desc, "type": "integer", "minimum": 1, "maximum": 65535}
}

func portOrRange(desc string) map[string]any {
	return map[string]any{"description": desc, "oneOf": []any{
		map[string]any{"type": "integer", "minimum": 1, "maximum": 65535},
		map[string]any{"type": "string", "pattern": `^` + portRangeP + `$`},
	}}
}

func object(desc string, props map[string]any, required ...string) map[string]any {
	o := map[string]any{"description": desc, "type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func nullable(o map[string]any) map[string]any {
	o["type"] = []string{"object", "null"}
	return o
}

// Schema is the JSON Schema (draft 2020-12) of spec version 1, as users
// write it in YAML: what `nsrun schema` prints and
// schemas/nsrun.schema.json holds. It catches what a schema can (unknown
// keys, types, names, port numbers, enums); nsrun validate checks the
// rest (overlaps, duplicates, addresses).
func Schema() []byte {
	ns := object("A network namespace; an empty entry (ns1: or ns1: {}) takes every default.", namespaceProps)
	ns["type"] = []string{"object", "null"}
	root := object("An nsrun spec, version 1: named network namespaces joined to the host by veth pairs, with published ports and processes.", specProps, "namespaces")
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "nsrun spec"
	root["$defs"] = map[string]any{
		"namespace": ns,
		"port": map[string]any{
			"description": "A published port: the short form \"[HOST_IP:]HOST_PORT[-END]:PORT[-END][/tcp|/udp]\", or a mapping with compose's names.",
			"oneOf": []any{
				map[string]any{"type": "string", "pattern": shortPort},
				object("A published port, long form.", portProps, "published", "target"),
			},
		},
		"process":   object("A process run inside the namespace.", processProps, "command"),
		"exec":      nullable(object("Who may run nsrun exec without root: users and groups of this host.", execProps)),
		"network":   nullable(object("A network of the project.", networkProps)),
		"resources": object("Resource limits, each optional: memory, cpus, pids.", resourceProps),
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		panic(err) // plain values only
	}
	return []byte(b.String())
}
