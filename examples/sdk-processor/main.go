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

// usd edits the JSON payload in place: no map, no re-encoding.
func usd(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	amount, _ := e.Field("amount").Float()
	kind, _ := e.Field("kind").Str()
	if err := e.SetField("amount_usd", amount/100); err != nil {
		return nil, sdk.Permanent(err) // not a JSON object: retrying will not help
	}
	if err := e.SetField("kind", strings.ToUpper(kind)); err != nil {
		return nil, sdk.Permanent(err)
	}
	return []*sdk.Event{e}, nil
}

func main() {
	info := sdk.Info{Name: "sdk-processor", Version: "1.0.0", Description: "W1 map: amount_usd and upper-case kind"}
	if err := sdk.Serve(context.Background(), sdk.ProcessorFunc(usd), sdk.WithInfo(info)); err != nil {
		log.Fatal(err)
	}
}
