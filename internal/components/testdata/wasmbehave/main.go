// Command wasmbehave is a test module for the wasm processor: what it
// does with an event depends on the event's data.do.
package main

import (
	"encoding/json"
	"errors"
	"os"

	"github.com/flowctl/flowctl/pkg/wasmguest"
)

func init() { wasmguest.Handle(behave) }

var sink []byte

func behave(ev wasmguest.Event) ([]wasmguest.Event, error) {
	var d struct {
		Do string `json:"do"`
		N  int    `json:"n"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return nil, err
	}
	switch d.Do {
	case "error":
		return nil, errors.New("told to fail")
	case "panic":
		panic("told to panic")
	case "exit": // the Go runtime's way to die: proc_exit, which stops the instance
		os.Exit(3)
	case "oom":
		sink = make([]byte, 1<<30)
	case "loop":
		for {
			d.N++
		}
	case "drop":
		return nil, nil
	case "fanout":
		return []wasmguest.Event{
			{Data: json.RawMessage(`{"part":1}`)},
			{Data: json.RawMessage(`{"part":2}`), Type: "half", Metadata: map[string]string{"k": "v"}},
		}, nil
	}
	return []wasmguest.Event{{Data: json.RawMessage(`{"seen":` + string(ev.Data) + `,"id":"` + ev.ID + `"}`)}}, nil
}

func main() {}
