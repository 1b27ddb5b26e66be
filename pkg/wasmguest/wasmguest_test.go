package wasmguest

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestBatch(t *testing.T) {
	Handle(func(ev Event) ([]Event, error) {
		switch string(ev.Data) {
		case `"fail"`:
			return nil, errors.New("bad event")
		case `"panic"`:
			panic("boom")
		case `"drop"`:
			return nil, nil
		}
		return []Event{{Data: json.RawMessage(`{"got":` + string(ev.Data) + `}`), Type: ev.Type + ".out"}}, nil
	})
	defer Handle(nil)
	tests := []struct{ name, in, want string }{
		{"one", `{"id":"1","type":"t","data":{"a":1}}` + "\n", `{"events":[{"type":"t.out","data":{"got":{"a":1}}}]}` + "\n"},
		{"no trailing newline and blank lines", "\n" + `{"id":"1","data":2}` + "\n\n" + `{"id":"2","data":3}`,
			`{"events":[{"type":".out","data":{"got":2}}]}` + "\n" + `{"events":[{"type":".out","data":{"got":3}}]}` + "\n"},
		{"error", `{"data":"fail"}`, `{"events":null,"error":"bad event"}` + "\n"},
		{"panic", `{"data":"panic"}`, `{"events":null,"error":"panic: boom"}` + "\n"},
		{"drop", `{"data":"drop"}`, `{"events":[]}` + "\n"},
		{"not JSON", `{oops`, `{"events":null,"error":"wasmguest: cannot read the event: invalid character 'o' looking for beginning of object key string"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Batch([]byte(tt.in), nil)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestBatchNoHandler(t *testing.T) {
	Handle(nil)
	got := string(Batch([]byte(`{"data":1}`), nil))
	want := `{"events":null,"error":"wasmguest: no handler: call wasmguest.Handle in an init function"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
