// Package crash holds the kill -9 harness of flowctl's checkpoints: it
// runs the benchmark workloads with the real binary, kills it with SIGKILL
// at random moments, runs it again each time, and checks the sink files
// against the input: nothing lost, nothing written twice.
package crash
