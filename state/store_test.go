package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestOthers: every project's record but the one named, in order, read
// side by side; one that cannot be read is left out.
func TestOthers(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	for _, p := range []string{"a", "b", "c", "d", "e"} {
		if err := st.Save(&Record{Version: Version, Project: p, Namespaces: []*Namespace{{Name: p + "1", Link: "nsr-" + p + "1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(st.ProjectDir("d"), "state.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	others, err := st.Others("b")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range others {
		got = append(got, o.Project+":"+o.Namespaces[0].Name)
	}
	if want := "[a:a1 c:c1 e:e1]"; fmt.Sprint(got) != want {
		t.Errorf("Others(b) = %v; want %s (d's record is corrupt)", got, want)
	}
}

// TestGrantsOfTheNamespacesNamed: only the grants of the namespaces
// asked for are read; a grant naming another namespace is none.
func TestGrantsOfTheNamespacesNamed(t *testing.T) {
	st := Store{Dir: filepath.Join(t.TempDir(), "nsrun")}
	if err := os.MkdirAll(st.grantDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"ns1": `{"version": 2, "namespace": "ns1", "uids": [1000]}`,
		"ns2": `{"version": 2, "namespace": "ns2", "uids": [1001]}`,
		"ns3": `{"version": 2, "namespace": "other", "uids": [1002]}`,
	} {
		if err := os.WriteFile(filepath.Join(st.grantDir(), name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g := st.Grants([]string{"ns1", "ns3", "missing"})
	if len(g) != 1 || g["ns1"].UIDs[0] != 1000 {
		t.Errorf("Grants = %v; want ns1 alone (ns2 not asked for, ns3 names another)", g)
	}
}
