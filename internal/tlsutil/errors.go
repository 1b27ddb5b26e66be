package tlsutil

import "errors"

// ErrExists is returned by Init when one of the files it would write is
// already there and InitOptions.Force is false.
var ErrExists = errors.New("certificate files already exist")

// ErrPlaintext is returned by CheckPlaintext and CheckListen for plaintext
// on a non-loopback address.
var ErrPlaintext = errors.New("plaintext on a non-loopback address")

// ErrNoClientAuth is returned by CheckListen for a TCP listener that would
// let anyone who connects drive the server: neither a token nor client
// certificates are required.
var ErrNoClientAuth = errors.New("TCP without a token or client certificates lets any local user drive the server")
