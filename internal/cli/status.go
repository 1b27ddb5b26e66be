package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/pkg/wire/controlv1"
)

func init() { register("status", newStatusCmd) }

func newStatusCmd(g *globals) *cobra.Command {
	var sf serverFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the flowctl server this CLI talks to: address, version, uptime, counts",
		Long: `status asks the flowctl server (--server, FLOWCTL_SERVER or the config file's context)
for its version, uptime, storage, security and how many pipelines and components it holds.
With no server it says so in one line and exits 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := parseOutput(output)
			if err != nil {
				return err
			}
			c, err := sf.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer c.close()
			st, err := c.status.Status(cmd.Context(), &controlv1.StatusRequest{})
			if err != nil {
				return c.rpcError("status", err)
			}
			if format == outJSON || format == outYAML {
				return printObjects(g.stdout, format, true, []*controlv1.StatusResponse{st})
			}
			security := "plaintext"
			switch {
			case strings.HasPrefix(st.GetListen(), "unix:"):
				security = "Unix socket (mode 0600: this user only)"
			case st.GetMtls():
				security = "mutual TLS"
			case st.GetTls():
				security = "TLS"
			}
			storage := st.GetDataDir()
			if storage == "" {
				storage = "in memory (nothing survives a restart)"
			}
			uptime := time.Duration(st.GetUptimeSeconds() * float64(time.Second))
			kv := newTable(g.stdout)
			kv.row("Server:", c.addr)
			if st.GetListen() != "" && st.GetListen() != c.addr {
				kv.row("Listening on:", st.GetListen())
			}
			kv.row("Version:", st.GetVersion())
			kv.row("Uptime:", humanDuration(uptime)+" (since "+asTime(st.GetStartedAt()).Local().Format(time.RFC3339)+")")
			kv.row("Security:", security)
			kv.row("Data:", storage)
			kv.row("Pipelines:", countLine(st.GetPipelines()))
			kv.row("Components:", countLine(st.GetComponents()))
			return kv.flush()
		},
	}
	addServerFlags(cmd, &sf)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

// countLine is "5 (running 3, completed 2)".
func countLine(m map[string]int32) string {
	total := int32(0)
	keys := make([]string, 0, len(m))
	for k, v := range m {
		total += v
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return fmt.Sprint(total)
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
