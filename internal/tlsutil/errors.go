package tlsutil

import "errors"

// ErrExists is returned by Init when one of the files it would write is
// already there and InitOptions.Force is false.
var ErrExists = errors.New("certificate files already exist")

// ErrPlaintext is returned by CheckPlaintext for a non-loopback address.
var ErrPlaintext = errors.New("plaintext on a non-loopback address")
