// Package docker is the Docker driver: it runs an `image:` component as a
// container through the Docker Engine API (github.com/moby/moby/client,
// which negotiates the API version down to the daemon's, 1.40 at the
// oldest).
//
// A container gets what a process gets: the component's environment
// (TaskConfig.Env, and nothing of flowctl's own environment), the host's
// network (so PORT=127.0.0.1:P and FLOWCTL_ENDPOINT=127.0.0.1:X mean the
// same inside as outside), its stdout and stderr captured line by line
// with the component's name as prefix, or its stdin and stdout as pipes
// for a stdio component. Restarts are flowctl's (the supervisor's); a
// container gets no Docker restart policy. Images are never pulled: an
// image that is not in the local daemon is an error that says how to
// build, load or import it.
//
// Every container is labelled (flowctl.managed, the pipeline, the
// component, the owning flowctl's host, pid and run id) and removed when
// it ends. A flowctl that was SIGKILLed cannot remove its containers, so
// the first Start of every flowctl reaps the containers whose owner
// process is gone (Reap). There is no re-attaching: a restarted flowctl
// starts its components again.
//
// It imports the drivers layer and the Docker client only; it knows
// nothing of pipelines or protocols.
package docker
