package words

import "testing"

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{
		{1, "link", "1 link"}, {0, "link", "0 links"}, {2, "published port", "2 published ports"},
		{3, "process", "3 processes"}, {1, "process", "1 process"},
	} {
		if got := Plural(c.n, c.noun); got != c.want {
			t.Errorf("Plural(%d, %q) = %q; want %q", c.n, c.noun, got, c.want)
		}
	}
}
