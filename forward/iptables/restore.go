package iptables

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Restore returns what iptables-save would print after iptables-restore
// --noflush ran the script on s, or the error it would fail with (and s
// unchanged: a batch applies whole or not at all). It understands what
// nsrun's scripts hold: declarations, -A, -I, -D and -X, and enforces what
// the kernel does: a chain is declared before use, a rule deleted exists,
// and a chain deleted is empty. It is the fake firewall of nsrun's tests.
func (s *Snapshot) Restore(script string) (*Snapshot, error) {
	out := s.clone()
	var table string
	for n, line := range strings.Split(script, "\n") {
		f := strings.Fields(line)
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s: %s", n+1, fmt.Sprintf(format, args...), line)
		}
		switch {
		case line == "" || line == "COMMIT":
		case line[0] == '*':
			table = line[1:]
			if out.Tables[table] == nil {
				out.Tables[table] = map[string]*Chain{}
			}
		case table == "":
			return nil, fail("before any table")
		case line[0] == ':':
			name := f[0][1:]
			if c := out.Tables[table][name]; c != nil {
				c.Rules = nil
			} else {
				out.Tables[table][name] = &Chain{Policy: "-"}
			}
		case len(f) < 2:
			return nil, fail("unexpected line")
		case out.Tables[table][f[1]] == nil:
			return nil, fail("chain %s/%s does not exist", table, f[1])
		case f[0] == "-A":
			c := out.Tables[table][f[1]]
			c.Rules = append(c.Rules, line)
		case f[0] == "-I" && len(f) > 2:
			c := out.Tables[table][f[1]]
			c.Rules = slices.Insert(c.Rules, 0, "-A "+f[1]+" "+strings.Join(f[3:], " "))
		case f[0] == "-D":
			c := out.Tables[table][f[1]]
			i := slices.Index(c.Rules, "-A"+line[2:])
			if i < 0 {
				return nil, fail("no such rule")
			}
			c.Rules = slices.Delete(c.Rules, i, i+1)
		case f[0] == "-X":
			if len(out.Tables[table][f[1]].Rules) > 0 {
				return nil, fail("chain %s is not empty", f[1])
			}
			delete(out.Tables[table], f[1])
		default:
			return nil, fail("unexpected line")
		}
	}
	return out, nil
}

func (s *Snapshot) clone() *Snapshot {
	out := &Snapshot{Tables: map[string]map[string]*Chain{}}
	for table, chains := range s.Tables {
		out.Tables[table] = map[string]*Chain{}
		for name, c := range chains {
			out.Tables[table][name] = &Chain{Policy: c.Policy, Rules: slices.Clone(c.Rules)}
		}
	}
	return out
}

// String prints the snapshot as iptables-save would, chains sorted.
func (s *Snapshot) String() string {
	var b strings.Builder
	for _, table := range slices.Sorted(maps.Keys(s.Tables)) {
		b.WriteString("*" + table + "\n")
		names := slices.Sorted(maps.Keys(s.Tables[table]))
		for _, name := range names {
			fmt.Fprintf(&b, ":%s %s [0:0]\n", name, s.Tables[table][name].Policy)
		}
		for _, name := range names {
			for _, r := range s.Tables[table][name].Rules {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
