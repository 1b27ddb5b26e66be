package server

// Attribute keys of the server's log lines, in one place so that every line
// names things the same way.
const (
	logKeyAddr     = "addr"
	logKeyDataDir  = "data_dir"
	logKeyError    = "error"
	logKeyGrace    = "grace"
	logKeyHash     = "hash"
	logKeyID       = "id"
	logKeyMTLS     = "mtls"
	logKeyPID      = "pid"
	logKeyPipeline = "pipeline"
	logKeyReason   = "reason"
	logKeyRetryIn  = "retry_in"
	logKeyRevision = "revision"
	logKeyRun      = "run"
	logKeyState    = "state"
	logKeyTLS      = "tls"
)
