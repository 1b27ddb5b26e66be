package spec

// Substitute replaces `${VAR}` and `${VAR:-default}` in a pipeline file's
// content with values from lookup (nil means no variable is set) and
// `$${` with a literal `${`, exactly as Parse does before parsing: lines
// that are whole comments are left alone, and no line is added or removed.
// file names the file in the diagnostics (unset variables, malformed
// references, values holding a line break). `flowctl apply` uses it to send
// the server a file already substituted with the client's environment.
func Substitute(file string, data []byte, lookup func(string) (string, bool)) ([]byte, Diagnostics) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	text, _, diags := substitute(file, data, lookup)
	return text, diags
}
