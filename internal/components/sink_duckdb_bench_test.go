//go:build duckdb && cgo

package components

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/flowctl/flowctl/internal/flow"
)

const duckBenchEvents, duckBenchBatch = 100_000, 500

// BenchmarkDuckDBSinkInsert writes 100k events through the sink (appender
// into a staging table, INSERT ... SELECT, position stored per batch).
func BenchmarkDuckDBSinkInsert(b *testing.B) {
	batches := make([][]*flow.Event, duckBenchEvents/duckBenchBatch)
	for i := range batches {
		batches[i] = make([]*flow.Event, duckBenchBatch)
		for j := range batches[i] {
			n := i*duckBenchBatch + j
			batches[i][j] = &flow.Event{ID: fmt.Sprint(n), Data: fmt.Appendf(nil, `{"id":%d,"account":"acct-%d","amount":%d,"kind":"fee"}`, n, n%1000, n%10000)}
		}
	}
	for b.Loop() {
		s := ioNewSink(b, "duckdb", b.TempDir(), flow.Config{"path": "b.duckdb", "table": "t", "columns": []any{"id", "account", "amount", "kind"}})
		for _, batch := range batches {
			if err := s.Write(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		ioClose(b, s)
	}
	b.ReportMetric(float64(duckBenchEvents*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDuckDBAppender writes the same rows with DuckDB's appender, one
// transaction per batch as the sink's, straight into the table: the
// ceiling (it cannot upsert, cast text to the column's type, or store the
// position).
func BenchmarkDuckDBAppender(b *testing.B) {
	for b.Loop() {
		db, err := sql.Open("duckdb", filepath.Join(b.TempDir(), "a.duckdb"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec("CREATE TABLE t (id BIGINT, account VARCHAR, amount BIGINT, kind VARCHAR)"); err != nil {
			b.Fatal(err)
		}
		conn, err := db.Conn(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for i := range duckBenchEvents / duckBenchBatch {
			if _, err := conn.ExecContext(context.Background(), "BEGIN"); err != nil {
				b.Fatal(err)
			}
			err = conn.Raw(func(dc any) error {
				a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "t")
				if err != nil {
					return err
				}
				for j := range duckBenchBatch {
					n := int64(i*duckBenchBatch + j)
					if err := a.AppendRow(n, fmt.Sprintf("acct-%d", n%1000), n%10000, "fee"); err != nil {
						return err
					}
				}
				return a.Close()
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
				b.Fatal(err)
			}
		}
		conn.Close()
		db.Close()
	}
	b.ReportMetric(float64(duckBenchEvents*b.N)/b.Elapsed().Seconds(), "events/s")
}
