package quote

import (
	"strings"
	"testing"
)

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"python3":               `python3`,
		"eth0":                  `eth0`,
		"nsr-ns1":               `nsr-ns1`,
		"kworker/0:1":           `kworker/0:1`,
		"":                      `""`,
		"my app":                `"my app"`,
		"\x1b[31mPWN\x1b]0;x\a": `"\x1b[31mPWN\x1b]0;x\a"`,
		"caf\u00e9":             `"café"`,
		"a\"b":                  `"a\"b"`,
		"line\nbreak":           `"line\nbreak"`,
		"\xff":                  `"\xff"`,
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %s; want %s", in, got, want)
		}
	}
}

func TestTerminal(t *testing.T) {
	var b strings.Builder
	w := Terminal(&b)
	in := "ok\tcafé\n\x1b[31mPWN\x1b]0;x\a\r\x7f\u009b\xff\n"
	if n, err := w.Write([]byte(in)); n != len(in) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(in))
	}
	if want := `ok` + "\t" + `café` + "\n" + `\x1b[31mPWN\x1b]0;x\x07\x0d\x7f\u009b\xff` + "\n"; b.String() != want {
		t.Errorf("Terminal wrote %q; want %q", b.String(), want)
	}
}
