// Package clientconfig finds the flowctl server a CLI command talks to and
// dials it, the way kubeconfig does for kubectl.
//
// The file ($FLOWCTL_CONFIG, else $XDG_CONFIG_HOME/flowctl/config.yaml, else
// ~/.config/flowctl/config.yaml) holds named contexts:
//
//	current-context: local
//	contexts:
//	  - name: local
//	    server: unix:/var/lib/flowctl/flowctl.sock
//	  - name: prod
//	    server: flow.example.com:7070
//	    ca: /etc/flowctl/ca.crt
//	    cert: client.crt          # relative paths are relative to this file
//	    key: client.key
//	    token: s3cret
//
// The address is chosen as --server > $FLOWCTL_SERVER > the context
// (--context, $FLOWCTL_CONTEXT, current-context) > DefaultSocket, the Unix
// socket a server started by this user without --data-dir listens on. It
// imports tlsutil, store (for the default data directory) and gRPC, nothing
// of the engine.
package clientconfig
