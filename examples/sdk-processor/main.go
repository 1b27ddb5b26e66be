// Command sdk-processor is a flowctl processor written with the Go SDK: the
// W1 map step, adding amount_usd = amount/100 and upper-casing kind. Use it
// in a pipeline file as `command: [go, run, ./examples/sdk-processor]` (or
// the built binary) with `protocol: grpc`.
package main

import (
	"context"
	"log"
	"strings"

	"github.com/flowctl/flowctl/pkg/sdk"
)

func usd(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	var m map[string]any
	if err := e.Decode(&m); err != nil {
		return nil, sdk.Permanent(err) // not JSON: retrying will not help
	}
	amount, _ := m["amount"].(float64)
	kind, _ := m["kind"].(string)
	m["amount_usd"] = amount / 100.0
	m["kind"] = strings.ToUpper(kind)
	if err := e.SetJSON(m); err != nil {
		return nil, err
	}
	return []*sdk.Event{e}, nil
}

func main() {
	info := sdk.Info{Name: "sdk-processor", Version: "1.0.0", Description: "W1 map: amount_usd and upper-case kind"}
	if err := sdk.Serve(context.Background(), sdk.ProcessorFunc(usd), sdk.WithInfo(info)); err != nil {
		log.Fatal(err)
	}
}
