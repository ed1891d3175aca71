package main

import (
	"github.com/spf13/cobra"
)

type execFlags struct {
	user    string
	env     []string
	workdir string
}

func newExecCommand() *cobra.Command {
	var flags execFlags
	c := &cobra.Command{
		Use:   "exec NS [flags] -- CMD [ARG...]",
		Short: "Run a command inside a named network namespace, like ip netns exec",
		Long: `Exec runs CMD inside the named network namespace NS (nsrun's or any other
that ip netns list shows), with /sys showing the namespace's interfaces and
the files of /etc/netns/NS/ in place of those in /etc. The exit status is the
command's own.`,
		Example: `  nsrun exec ns1 -- ip addr
  nsrun exec ns1 --user nobody --env GREETING=hi --workdir /tmp -- python3 -m http.server 8080`,
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: notImplemented,
	}
	c.Flags().SetInterspersed(false)
	c.Flags().StringVar(&flags.user, "user", "", "run as this user: name or uid[:gid]")
	c.Flags().StringArrayVar(&flags.env, "env", nil, "set an environment variable, KEY=VALUE (repeatable)")
	c.Flags().StringVar(&flags.workdir, "workdir", "", "run in this directory")
	return c
}
