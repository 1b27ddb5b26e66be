package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/clientconfig"
	"github.com/flowctl/flowctl/pkg/wire/controlv1"
	"github.com/flowctl/flowctl/pkg/wire/streamv1"
)

// serverFlags are the flags of every command that talks to a flowctl
// server: where it is (--server, else FLOWCTL_SERVER, else the config
// file's context, else clientconfig.DefaultSocket) and how to reach it.
type serverFlags struct {
	server, context     string
	tlsCA, tlsCert, key string
	token               string
	insecure            bool
}

// addServerFlags puts the connection flags on cmd (and its subcommands).
func addServerFlags(cmd *cobra.Command, sf *serverFlags) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&sf.server, "server", "", "flowctl server address, unix:PATH or host:port (default: $"+clientconfig.EnvServer+", then the config file's context, then the socket unix:<data-dir>/"+clientconfig.SocketName+" of a server started without --data-dir)")
	pf.StringVar(&sf.context, "context", "", "named context of the client config file to use (default: $"+clientconfig.EnvContext+", then current-context)")
	pf.StringVar(&sf.tlsCA, "tls-ca", "", "CA file that verifies the server's certificate (turns TLS on)")
	pf.StringVar(&sf.tlsCert, "tls-cert", "", "client certificate file, for a server that wants mutual TLS")
	pf.StringVar(&sf.key, "tls-key", "", "client key file, for a server that wants mutual TLS")
	pf.StringVar(&sf.token, "token", "", "bearer token the server asks for (default: $"+clientconfig.EnvToken+")")
	pf.BoolVar(&sf.insecure, "insecure", false, "allow plaintext to a server that is not on this machine")
}

// client is an open connection to a flowctl server with a stub per service.
type client struct {
	addr      string
	cc        *grpc.ClientConn
	pipelines controlv1.PipelineServiceClient
	runs      controlv1.RunServiceClient
	logs      controlv1.LogServiceClient
	status    controlv1.StatusServiceClient
	registry  streamv1.ControlPlaneServiceClient
}

// connect resolves the server address and opens a (lazy) connection to it.
func (sf *serverFlags) connect(ctx context.Context) (*client, error) {
	addr, cc, err := dialServer(ctx, sf)
	if err != nil {
		return nil, err
	}
	return &client{
		addr:      addr,
		cc:        cc,
		pipelines: controlv1.NewPipelineServiceClient(cc),
		runs:      controlv1.NewRunServiceClient(cc),
		logs:      controlv1.NewLogServiceClient(cc),
		status:    controlv1.NewStatusServiceClient(cc),
		registry:  streamv1.NewControlPlaneServiceClient(cc),
	}, nil
}

// close closes the connection.
func (c *client) close() { _ = c.cc.Close() }

// dialServer resolves the address and dials it; nothing listening there
// is the one-line *clientconfig.NoServerError.
func dialServer(ctx context.Context, sf *serverFlags) (string, *grpc.ClientConn, error) {
	t, err := clientconfig.ResolveWith(clientconfig.Overrides{
		Server:   sf.server,
		Context:  sf.context,
		CA:       sf.tlsCA,
		Cert:     sf.tlsCert,
		Key:      sf.key,
		Token:    sf.token,
		Insecure: sf.insecure,
	})
	if err != nil {
		return "", nil, err
	}
	cc, err := clientconfig.Dial(ctx, t)
	if err != nil {
		return t.Address, nil, err
	}
	return t.Address, cc, nil
}

// noServerError is the one line a user gets when the server went away
// after the connection was made.
func noServerError(addr string) error {
	return &clientconfig.NoServerError{Address: addr}
}

// rpcError turns an RPC failure into what the user should read: the one
// no-server line when the connection could not be made, the server's own
// message (without the gRPC decoration) otherwise.
func (c *client) rpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch st.Code() {
	case codes.Unavailable:
		if s := c.cc.GetState(); s == connectivity.TransientFailure || s == connectivity.Idle || s == connectivity.Connecting {
			return noServerError(c.addr)
		}
	case codes.Canceled:
		// Interrupted (Ctrl-C): the user knows; exit like a shell does.
		return &exitError{code: 130}
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: the server at %s did not answer in time", what, c.addr)
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists:
		return errors.New(st.Message())
	}
	return fmt.Errorf("%s: %s", what, st.Message())
}

// asTime converts a protobuf timestamp; absent is the zero time.
func asTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// table writes aligned columns like kubectl: upper-case headers, three
// spaces between columns, "<none>" for an empty cell (unless blank), no
// trailing spaces.
type table struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
	// blank prints empty cells as they are instead of "<none>".
	blank bool
}

// newTable starts a table with the given headers (none: no header row).
func newTable(w io.Writer, headers ...string) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 3, ' ', 0)
	if len(headers) > 0 {
		t.row(headers...)
	}
	return t
}

// cellCleaner keeps a cell on one line and in one column.
var cellCleaner = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

// row adds one row.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" && !t.blank {
			c = "<none>"
		}
		if i > 0 {
			t.tw.Write([]byte{'\t'})
		}
		io.WriteString(t.tw, cellCleaner.Replace(c))
	}
	t.tw.Write([]byte{'\n'})
}

// flush writes the table out.
func (t *table) flush() error {
	if err := t.tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(t.buf.String(), "\n") {
		if line == "" {
			continue
		}
		out.WriteString(strings.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	t.buf.Reset()
	if _, err := t.w.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// humanDuration prints d the way kubectl prints ages: short and coarser
// the longer it is (45s, 3m20s, 12m, 5h30m, 20h, 3d4h, 12d, 2y).
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	min := sec / 60
	hour := min / 60
	day := hour / 24
	switch {
	case d < time.Second:
		return "0s"
	case sec < 120:
		return fmt.Sprintf("%ds", sec)
	case min < 10:
		if s := sec % 60; s != 0 {
			return fmt.Sprintf("%dm%ds", min, s)
		}
		return fmt.Sprintf("%dm", min)
	case hour < 3:
		return fmt.Sprintf("%dm", min)
	case hour < 8:
		if m := min % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", hour, m)
		}
		return fmt.Sprintf("%dh", hour)
	case hour < 48:
		return fmt.Sprintf("%dh", hour)
	case day < 8:
		if h := hour % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", day, h)
		}
		return fmt.Sprintf("%dd", day)
	case day < 365*2:
		return fmt.Sprintf("%dd", day)
	}
	return fmt.Sprintf("%dy", day/365)
}

// ageSince is the age of t at now, "<unknown>" when t is zero.
func ageSince(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return humanDuration(now.Sub(t))
}

// outputFormat is the -o flag of the observing commands.
type outputFormat string

// The -o values.
const (
	outTable outputFormat = ""
	outWide  outputFormat = "wide"
	outJSON  outputFormat = "json"
	outYAML  outputFormat = "yaml"
)

// parseOutput checks the -o flag.
func parseOutput(s string) (outputFormat, error) {
	switch o := outputFormat(strings.ToLower(s)); o {
	case outTable, outWide, outJSON, outYAML:
		return o, nil
	}
	return "", fmt.Errorf("-o %q: use json, yaml or wide (or leave it out for a table)", s)
}

// protoJSON renders a message as compact JSON with the proto field names
// (snake_case), zero values left out. A pipeline's spec (bytes, so base64
// in JSON) is shown as the text it is.
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	b = compact.Bytes()
	if p, ok := m.(*controlv1.Pipeline); ok && len(p.GetSpec()) > 0 {
		text, _ := marshalNoEscape(string(p.GetSpec()))
		b64, _ := json.Marshal(p.GetSpec())
		b = bytes.Replace(b, append([]byte(`"spec":`), b64...), append([]byte(`"spec":`), text...), 1)
	}
	return b, nil
}

// printObjects writes one message (single) or a list of them as JSON or
// YAML. A list is an object with "items", so it stays one document.
func printObjects[M proto.Message](w io.Writer, format outputFormat, single bool, items []M) error {
	raws := make([]json.RawMessage, 0, len(items))
	for _, m := range items {
		b, err := protoJSON(m)
		if err != nil {
			return err
		}
		raws = append(raws, b)
	}
	var doc any
	if single && len(raws) == 1 {
		doc = raws[0]
	} else {
		doc = struct {
			Items []json.RawMessage `json:"items"`
		}{raws}
	}
	return printDoc(w, format, doc)
}

// marshalNoEscape is json.Marshal without escaping <, > and & (the output
// is for people, not for HTML).
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// printDoc writes doc (anything encoding/json can encode) as indented JSON
// or as block-style YAML with the same keys in the same order.
func printDoc(w io.Writer, format outputFormat, doc any) error {
	b, err := marshalNoEscape(doc)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	if format == outJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	}
	y, err := jsonToYAML(b)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}

// jsonToYAML re-encodes JSON as block-style YAML, keeping key order (JSON
// is YAML, so the parser reads it; clearing the flow style makes it block).
func jsonToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("encode output as yaml: %w", err)
	}
	var unflow func(*yaml.Node)
	unflow = func(n *yaml.Node) {
		n.Style &^= yaml.FlowStyle
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			n.Style &^= yaml.DoubleQuotedStyle
		}
		for _, c := range n.Content {
			unflow(c)
		}
	}
	unflow(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("encode output as yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode output as yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// given reports whether a flag or the environment names a server, so
// that a command with a local alternative (tap) asks the server first.
func (sf *serverFlags) given() bool {
	return sf.server != "" || sf.context != "" || os.Getenv(clientconfig.EnvServer) != "" || os.Getenv(clientconfig.EnvContext) != ""
}
