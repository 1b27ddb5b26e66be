// Package cli builds flowctl's command line: one file per subcommand, each
// a thin layer over the packages that do the work.
package cli
