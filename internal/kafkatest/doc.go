// Package kafkatest runs kfake for tests: franz-go's in-process fake of
// the Kafka protocol (github.com/twmb/franz-go/pkg/kfake), listening on
// 127.0.0.1 at random ports. kfake is not Apache Kafka: it implements the
// wire protocol (produce, fetch, consumer groups, idempotent and
// transactional producers) in Go, in memory, well enough to test a
// client, and is named as what it is wherever a test uses it.
//
// kfake is linked only into tests: flowctl speaks to Kafka through the
// franz-go client and never imports this package (a test in
// internal/archtest checks that kfake is not in the flowctl binary). An
// end-to-end test that kills flowctl with SIGKILL keeps the cluster in
// the test process, so the cluster lives on while flowctl dies.
//
// It imports kfake, franz-go's client and the standard library, nothing
// of flowctl, and only tests import it.
package kafkatest
