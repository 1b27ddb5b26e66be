// Command flowctl runs a declared event pipeline. See the README.
package main

import (
	"os"

	"github.com/flowctl/flowctl/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
