package engine

// Attribute keys of the engine's log lines, in one place so that every
// line names things the same way.
const (
	logKeyPipeline   = "pipeline"
	logKeyComponent  = "component"
	logKeyError      = "error"
	logKeyAttempt    = "attempt"
	logKeyEventID    = "event_id"
	logKeySuppressed = "suppressed"
	logKeyWait       = "wait"
	logKeyFailingFor = "failing_for"
)
