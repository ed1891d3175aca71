// Package words writes counts in English for nsrun's messages.
package words

import (
	"fmt"
	"strings"
)

// Plural writes n noun: "1 link", "2 links", "3 processes".
func Plural(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "s"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
