// Package bolt is the store.Store that `flowctl server` keeps on disk: one
// bbolt file under the data dir, holding applied pipelines, component
// registrations and the run history.
//
// Layout (schema v2):
//
//	meta            "schema_version" → "2"
//	pipelines       name → {"v":2,"data":pipeline}   (deleted ones stay as tombstones)
//	registrations   id   → {"v":2,"data":registration}
//	runs            pipeline (nested bucket) → 8-byte big-endian id → {"v":2,"data":run}
//
// Every value carries the schema version it was written with. Open refuses
// a file (or, when reading, a value) of a newer schema than this binary
// knows, and migrates a file of the previous schema (v1, see migrate.go) in
// one transaction before anything else reads it.
//
// This package imports the store domain only; nothing imports it but the
// server and the CLI that build one.
package bolt
