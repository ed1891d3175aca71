package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newManCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write a man page for each command into DIR",
		Long: `Man writes nsrun.1 and one page per command (nsrun-up.1, nsrun-down.1, ...)
into DIR, from the same text as --help. scripts/install.sh installs them;
read one in place with man -l DIR/nsrun-up.1.`,
		Example: `  nsrun man /tmp/man && man -l /tmp/man/nsrun-up.1`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			date, err := manDate()
			if err != nil {
				return err
			}
			if err := writeManTree(c.Root(), args[0], date); err != nil {
				return fmt.Errorf("writing the man pages to %s: %w", args[0], err)
			}
			return nil
		},
	}
}

// manDate is the pages' date: SOURCE_DATE_EPOCH's when set (reproducible
// builds), else today's.
func manDate() (string, error) {
	now := time.Now()
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		secs, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return "", usageError(fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", epoch))
		}
		now = time.Unix(secs, 0).UTC()
	}
	return now.Format("Jan 2006"), nil
}

// writeManTree writes the page of c and of each command under it that
// --help lists (not hidden ones, not help) into dir, named by the
// command's path: nsrun-up.1.
func writeManTree(c *cobra.Command, dir, date string) error {
	c.InitDefaultHelpFlag() // as --help shows it
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			if err := writeManTree(sub, dir, date); err != nil {
				return err
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, manName(c)+".1"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	writeMan(w, c, date)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func manName(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") }

// writeMan writes one command's page in man(7) roff: its name and short
// text, its use line, its long text (paragraphs filled, indented lines
// kept as they are), its flags, its examples and the related pages.
func writeMan(w *bufio.Writer, c *cobra.Command, date string) {
	fmt.Fprintf(w, ".TH %s 1 %s %s %s\n", roffArg(strings.ToUpper(manName(c))), roffArg(date),
		roffArg("nsrun "+versionString()), roffArg("nsrun manual"))
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roff(manName(c)), roff(c.Short))
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B %s\n", roff(c.UseLine()))
	description := c.Long
	if description == "" {
		description = c.Short
	}
	w.WriteString(".SH DESCRIPTION\n")
	writeText(w, description)
	if flags := c.NonInheritedFlags(); flags.HasAvailableFlags() {
		w.WriteString(".SH OPTIONS\n")
		writeFlags(w, flags)
	}
	if flags := c.InheritedFlags(); flags.HasAvailableFlags() {
		w.WriteString(".SH \"OPTIONS INHERITED FROM PARENT COMMANDS\"\n")
		writeFlags(w, flags)
	}
	if c.Example != "" {
		w.WriteString(".SH EXAMPLE\n.nf\n")
		for _, line := range strings.Split(strings.TrimRight(c.Example, "\n"), "\n") {
			fmt.Fprintf(w, "%s\n", roff(line))
		}
		w.WriteString(".fi\n")
	}
	var related []string
	if c.HasParent() {
		related = append(related, manName(c.Parent()))
	}
	subs := c.Commands()
	slices.SortFunc(subs, func(a, b *cobra.Command) int { return strings.Compare(a.Name(), b.Name()) })
	for _, sub := range subs {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			related = append(related, manName(sub))
		}
	}
	if len(related) > 0 {
		w.WriteString(".SH \"SEE ALSO\"\n")
		for i, name := range related {
			sep := ","
			if i == len(related)-1 {
				sep = ""
			}
			fmt.Fprintf(w, ".BR %s (1)%s\n", roff(name), sep)
		}
	}
}

// writeText writes text as --help shows it: a blank line starts a
// paragraph, lines of a paragraph are filled, and indented lines (lists,
// commands, tables) are kept as they are; a markdown heading ("#### Linux:",
// in cobra's completion commands) is a subsection.
func writeText(w *bufio.Writer, text string) {
	verbatim := false
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		indented := strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
		heading, isHeading := markdownHeading(line)
		switch {
		case strings.TrimSpace(line) == "" || isHeading:
			if verbatim {
				w.WriteString(".fi\n")
				verbatim = false
			}
			if isHeading {
				fmt.Fprintf(w, ".SS %s\n", roffArg(heading))
			} else {
				w.WriteString(".PP\n")
			}
			continue
		case indented && !verbatim:
			w.WriteString(".nf\n")
			verbatim = true
		case !indented && verbatim:
			w.WriteString(".fi\n")
			verbatim = false
		}
		fmt.Fprintf(w, "%s\n", roff(line))
	}
	if verbatim {
		w.WriteString(".fi\n")
	}
}

// markdownHeading returns the title of a line such as "## Title".
func markdownHeading(line string) (string, bool) {
	hashes := strings.TrimLeft(line, "#")
	if len(hashes) == len(line) || !strings.HasPrefix(hashes, " ") {
		return "", false
	}
	return strings.TrimSpace(hashes), true
}

// writeFlags writes each flag that --help shows, with its default and
// its usage.
func writeFlags(w *bufio.Writer, flags *pflag.FlagSet) {
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		w.WriteString(".TP\n")
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			fmt.Fprintf(w, "\\fB\\-%s\\fR, ", roff(f.Shorthand))
		}
		fmt.Fprintf(w, "\\fB\\-\\-%s\\fR", roff(f.Name))
		if def := f.DefValue; f.Value.Type() != "bool" && def != "" && def != "[]" {
			if f.Value.Type() == "string" {
				def = strconv.Quote(def)
			}
			fmt.Fprintf(w, "=%s", roff(def))
		}
		fmt.Fprintf(w, "\n%s\n", roff(f.Usage))
	})
}

// roff escapes text for a roff line: backslashes, and a leading dot or
// quote, which would make the line a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "\n", " ")
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// roffArg is s as one argument of a request: quoted, with its quotes
// doubled.
func roffArg(s string) string {
	return `"` + strings.ReplaceAll(roff(s), `"`, `""`) + `"`
}
