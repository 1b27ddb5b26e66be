// Package boltfile opens the bbolt files flowctl keeps (the server's store,
// checkpoint stores) so that a damaged or foreign file fails loudly, with
// an error that names the file, says what is wrong and what to do, instead
// of a bbolt panic minutes later or, for a zero-length file, a silent new
// empty store that forgets everything the old one held.
//
// It imports bbolt and the standard library only; the stores that use it
// import it, never the reverse.
package boltfile
