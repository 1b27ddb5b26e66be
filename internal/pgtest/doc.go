// Package pgtest starts a real PostgreSQL server for tests: initdb into a
// temporary directory, postgres on 127.0.0.1 at a free port with its Unix
// socket in that directory, a readiness wait, and a fast shutdown.
//
// It needs the server binaries (initdb, postgres): on PATH, or in Debian's
// /usr/lib/postgresql/<version>/bin (apt-get install postgresql). When the
// test process runs as root, which postgres refuses, initdb and postgres run
// as the `postgres` system user through `runuser -u postgres --` (the data
// directory is chowned to that user first); Debian's postgresql package
// creates that user. The server is started under a small shell that watches
// its standard input: when the test process ends, even killed, the pipe
// closes and the shell stops postgres (SIGINT, a fast shutdown), so no
// server outlives its tests.
//
// Servers start with wal_level=logical and room for replication slots and
// walsenders (Logical), so logical replication can be tested; StartWith
// adds or overrides settings (StartWith(ctx, "wal_level=replica")).
//
// One server per test package: Shared starts it once (sync.Once) and every
// test creates its own database with NewDatabase.
//
// The temporary directory is made under os.TempDir(); as root it is chowned
// to postgres, so TMPDIR must be a directory that user can traverse (/tmp
// is). The watching shell is /bin/sh: on Windows Start reports
// ErrNotInstalled.
//
// It imports only pgx and the standard library, nothing of flowctl, and
// only tests import it.
package pgtest
