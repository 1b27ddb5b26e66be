package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// Every registered name must be the name cobra gives the built command,
// or `flowctl NAME` would build the wrong command (or none) on its own.
func TestSubcommandNames(t *testing.T) {
	g := &globals{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	seen := map[string]bool{}
	for _, sc := range subcommands {
		if seen[sc.name] {
			t.Errorf("%q registered twice", sc.name)
		}
		seen[sc.name] = true
		if got := sc.build(g).Name(); got != sc.name {
			t.Errorf("registered as %q, but the command is named %q", sc.name, got)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no subcommands registered")
	}
}

func TestOnlyCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"run", "-f", "p.yaml"}, "run"},
		{[]string{"version"}, "version"},
		{[]string{"--help"}, ""},
		{[]string{"--log-level", "debug", "run"}, ""},
		{[]string{"help", "run"}, ""},
		{[]string{"completion", "bash"}, ""},
		{[]string{"__complete", "ru"}, ""},
		{[]string{"rnu"}, ""},
	} {
		if got := onlyCommand(c.args); got != c.want {
			t.Errorf("onlyCommand(%q) = %q, want %q", c.args, got, c.want)
		}
	}
}

// Building one command must not change what it does or prints: the help
// of a command and the output of version are the same from the whole tree.
func TestOneCommandTreeSameAsWhole(t *testing.T) {
	for _, args := range [][]string{
		{"version"},
		{"run", "--help"},
		{"validate", "--help"},
		{"server", "--help"},
	} {
		var one, whole bytes.Buffer
		g1 := &globals{stdin: strings.NewReader(""), stdout: &one, stderr: &one}
		r1 := newRoot(g1, onlyCommand(args))
		r1.SetArgs(args)
		err1 := r1.Execute()
		g2 := &globals{stdin: strings.NewReader(""), stdout: &whole, stderr: &whole}
		r2 := newRoot(g2, "")
		r2.SetArgs(args)
		err2 := r2.Execute()
		if (err1 == nil) != (err2 == nil) || one.String() != whole.String() {
			t.Errorf("%q: one command gave %v %q, the whole tree %v %q", args, err1, one.String(), err2, whole.String())
		}
		if one.Len() == 0 {
			t.Errorf("%q printed nothing", args)
		}
	}
	// The whole tree has every command.
	names := map[string]bool{}
	for _, c := range newRoot(&globals{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}, onlyCommand([]string{"--help"})).Commands() {
		names[c.Name()] = true
	}
	for _, sc := range subcommands {
		if !names[sc.name] {
			t.Errorf("the whole tree has no %q", sc.name)
		}
	}
}
