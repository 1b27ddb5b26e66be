// Command usdmap is a Wasm processor for flowctl: the map step of the
// benchmark W1 (bench/w1.yaml), written in Go. It adds amount_usd (amount
// in cents / 100) and upper-cases kind; an event without a numeric amount
// goes to the dead-letter output with the reason.
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o usdmap.wasm .
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/flowctl/flowctl/pkg/wasmguest"
)

func init() { wasmguest.Handle(usdMap) }

func usdMap(ev wasmguest.Event) ([]wasmguest.Event, error) {
	// UseNumber keeps every number's text as it came (no float rounding
	// of big integers); the object's keys are written back sorted.
	dec := json.NewDecoder(bytes.NewReader(ev.Data))
	dec.UseNumber()
	var data map[string]any
	if err := dec.Decode(&data); err != nil {
		return nil, err
	}
	n, ok := data["amount"].(json.Number)
	if !ok {
		return nil, errors.New("amount is missing or not a number")
	}
	amount, err := n.Float64()
	if err != nil {
		return nil, err
	}
	data["amount_usd"] = amount / 100
	if kind, ok := data["kind"].(string); ok {
		data["kind"] = strings.ToUpper(kind)
	}
	out, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return []wasmguest.Event{{Data: out}}, nil
}

// main is not run in a reactor (c-shared) module; the package needs one.
func main() {}
