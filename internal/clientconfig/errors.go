package clientconfig

import "errors"

// ErrUnknownContext is wrapped by errors about a context name that is not in
// the file.
var ErrUnknownContext = errors.New("no such context")

// ErrNoServer is matched (errors.Is) by a NoServerError: nothing accepted a
// connection at the resolved address.
var ErrNoServer = errors.New("no flowctl server")
