package main

import (
	"errors"

	"github.com/nsrun/nsrun/export"
	"github.com/nsrun/nsrun/specs"
	"github.com/spf13/cobra"
)

func newExportCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "export",
		Short: "Print the spec as Kubernetes objects or as a Compose file",
		Long: `Export carries a project beyond one machine. 'nsrun export kubernetes'
prints Kubernetes objects, 'nsrun export compose' a Compose file. Each
nsrun namespace becomes a pod (or a group of services sharing one's
network): its run entries share its network, as they share the namespace.
What cannot be carried is refused, every problem at once, and nothing is
printed; what is dropped on purpose is listed in a comment at the top.
Changes nothing, needs no root.`,
		Args: noSubcommand,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newExportKubernetesCommand(), newExportComposeCommand())
	return c
}

func newExportKubernetesCommand() *cobra.Command {
	var images []string
	var o export.KubeOptions
	c := &cobra.Command{
		Use:   "kubernetes SPEC --image IMAGE [--image NS/PROC=IMAGE]...",
		Short: "Print the spec as Kubernetes objects (Deployments, Services, NetworkPolicies)",
		Long: `Prints, per nsrun namespace, a Deployment (replicas 1; a Pod with --kind pod)
with one container per run entry, a headless Service of the namespace's
name (the name other namespaces reach it by), a ClusterIP Service of its
published ports (or hostPorts with --publish hostport), and for egress:
false a NetworkPolicy that allows egress to the project's pods and to the
cluster's DNS only. Every object is labelled with the project and the
namespace. Each run entry needs an image: --image IMAGE for all, --image
NS/PROC=IMAGE for one.`,
		Example: `  nsrun export kubernetes specs/examples/blog.yaml --image python:3.12-slim > blog.k8s.yaml
  kubectl apply -f blog.k8s.yaml && kubectl rollout status deployment/ns1`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return printExport(c, args[0], images, func(s *specs.Spec, im export.Images) ([]byte, error) {
				o.Images = im
				return export.Kubernetes(s, o)
			})
		},
	}
	c.Flags().StringArrayVar(&images, "image", nil, "the image of every run entry (IMAGE), or of one (NS/PROC=IMAGE); repeatable")
	c.Flags().StringVar(&o.Publish, "publish", export.PublishService, "how published ports are carried: service (a ClusterIP Service) or hostport")
	c.Flags().StringVar(&o.Kind, "kind", export.KindDeployment, "the workload of each namespace: deployment or pod")
	c.Flags().StringVar(&o.Namespace, "namespace", "", "the Kubernetes namespace of every object (default: none, kubectl's)")
	return c
}

func newExportComposeCommand() *cobra.Command {
	var images, checks []string
	c := &cobra.Command{
		Use:   "compose SPEC --image IMAGE [--image NS/PROC=IMAGE]... [--check NS/PROC=COMMAND]...",
		Short: "Print the spec as a Compose file",
		Long: `Prints a Compose file: one service per run entry, named NS-PROC; the first
of each namespace owns its published ports (ranges and host addresses
kept), and the others join its network with network_mode: service:FIRST.
restart, user, working_dir and environment are carried. A ready check is a
healthcheck only with the command that checks it, given with --check
(Compose runs it inside the container); otherwise the output says it is
not carried. egress: false is refused: Compose's internal networks cannot
publish ports.`,
		Example: `  nsrun export compose specs/examples/blog.yaml --image python:3.12-slim > compose.yaml
  docker compose -f compose.yaml up -d`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			parsed, err := export.ParseChecks(checks)
			if err != nil {
				return usageError(err)
			}
			return printExport(c, args[0], images, func(s *specs.Spec, im export.Images) ([]byte, error) {
				return export.Compose(s, export.ComposeOptions{Images: im, Checks: parsed})
			})
		},
	}
	c.Flags().StringArrayVar(&images, "image", nil, "the image of every run entry (IMAGE), or of one (NS/PROC=IMAGE); repeatable")
	c.Flags().StringArrayVar(&checks, "check", nil, "the healthcheck command of a run entry with a ready check (NS/PROC=COMMAND); repeatable")
	return c
}

// printExport loads the spec, reads the --image flags and prints what
// render makes of them. A refused export is a usage error (exit 2): what
// the spec or the flags ask cannot be carried, and the host is not involved.
func printExport(c *cobra.Command, path string, images []string, render func(*specs.Spec, export.Images) ([]byte, error)) error {
	s, err := loadSpec(path)
	if err != nil {
		return err
	}
	im, err := export.ParseImages(images)
	if err != nil {
		return usageError(err)
	}
	out, err := render(s, im)
	var r *export.Refused
	if errors.As(err, &r) {
		return usageError(err)
	}
	if err != nil {
		return err
	}
	_, err = c.OutOrStdout().Write(out)
	return err
}
