package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { register("delete", newDeleteCmd) }

func newDeleteCmd(g *globals) *cobra.Command {
	var (
		sf      serverFlags
		target  string
		volumes bool
		kf      kubeFlags
	)
	cmd := &cobra.Command{
		Use:   "delete pipeline NAME",
		Short: "Stop a pipeline and remove it from the flowctl server",
		Long: `delete drains the pipeline's run (SIGTERM, the server's grace, then SIGKILL), waits
until every process it started is gone, and removes the pipeline. Its run history, logs and
checkpoints are kept: applied again, it resumes where it stopped and keeps what its file sinks
wrote ("flowctl state reset NAME --state-dir <data-dir>/pipelines/NAME/state" makes it start
over).

--target docker-compose runs docker-compose down on the project apply started (found by its
containers' labels); its named volumes, which hold the checkpoints, are kept unless
--volumes.

--target kubernetes deletes the objects apply --target kubernetes made (found by their
labels): workloads, Services, the ConfigMap and the Secrets; the PersistentVolumeClaims (state
and named volumes) are kept unless --volumes.

--target nomad stops the pipeline's Nomad job (deregistered, not purged) at NOMAD_ADDR.`,
		Example: `  flowctl delete pipeline payments
  flowctl delete pipeline/payments
  flowctl delete pipeline payments --target docker-compose --volumes`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := pipelineArg(args)
			if err != nil {
				return err
			}
			if kubeTarget(target) {
				return deleteKube(cmd.Context(), g, kf, name, volumes)
			}
			if nomadTarget(target) {
				if volumes {
					return errors.New("--volumes goes with --target docker-compose")
				}
				return deleteNomad(g, name)
			}
			compose, err := composeTarget(target)
			if err != nil {
				return err
			}
			if compose {
				return deleteCompose(cmd.Context(), g, name, volumes)
			}
			if volumes {
				return errors.New("--volumes goes with --target docker-compose or kubernetes")
			}
			c, err := sf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			resp, err := c.pipelines.Delete(cmd.Context(), &controlv1.DeletePipelineRequest{Name: name})
			if err != nil {
				return c.rpcError("delete pipeline/"+name, err)
			}
			line := fmt.Sprintf("pipeline/%s deleted", name)
			if pids := resp.GetStoppedPids(); len(pids) > 0 {
				s := make([]string, len(pids))
				for i, p := range pids {
					s[i] = strconv.Itoa(int(p))
				}
				word := "process"
				if len(pids) > 1 {
					word = "processes"
				}
				line += fmt.Sprintf(" (stopped %s %s)", word, strings.Join(s, ", "))
			}
			fmt.Fprintln(g.stdout, line)
			return nil
		},
	}
	addServerFlags(cmd, &sf)
	cmd.Flags().StringVar(&target, "target", targetServer, "server (the flowctl server), docker-compose (docker-compose down on the project apply started), kubernetes (delete the objects apply made) or nomad (stop the Nomad job apply registered)")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "docker-compose, kubernetes: remove the named volumes / PersistentVolumeClaims (the checkpoints) too")
	addKubeFlags(cmd, &kf)
	return cmd
}
