package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestDeadLetterRoundTrip: Original gives back the failed event's bytes
// and attributes, whichever shape its payload had, from both the data and
// the envelope form of a dead-letter file's line.
func TestDeadLetterRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 6, 5, 0, 0, 123, time.UTC)
	for _, tc := range []struct {
		name string
		data string
	}{
		{"object", `{"amount":1,"kind":"x"}`},
		{"array", `[1,2]`},
		{"number", `42`},
		{"malformed JSON", `{"amount":`},
		{"text", `plain text line`},
		{"JSON string", `"quoted"`},
		{"JSON null", `null`},
		{"empty", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Event{ID: "src:7", Type: "payment", Source: "src", Subject: "s", DataContentType: "application/json",
				Time: at, Metadata: map[string]string{"k": "v"}, Data: []byte(tc.data)}
			line, err := json.Marshal(NewDeadLetter("usd", errors.New("boom"), 3, ev))
			if err != nil {
				t.Fatal(err)
			}
			d, err := ParseDeadLetter(line)
			if err != nil {
				t.Fatalf("parse %s: %v", line, err)
			}
			if d.Component != "usd" || d.Error != "boom" || d.Attempts != 3 {
				t.Fatalf("record %+v", d)
			}
			got, err := d.Original()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.data
			if tc.data == "null" {
				want = "null" // kept as the string "null", not lost as empty
			}
			if string(got.Data) != want || got.ID != ev.ID || got.Type != ev.Type || got.Source != ev.Source ||
				got.Subject != ev.Subject || got.DataContentType != ev.DataContentType || !got.Time.Equal(at) || got.Metadata["k"] != "v" {
				t.Fatalf("original %+v data %q, want %+v data %q", got, got.Data, ev, want)
			}
		})
	}
}

func TestParseDeadLetterEnvelope(t *testing.T) {
	line := []byte(`{"specversion":"1.0","id":"a:1","source":"usd","type":"flowctl.dead_letter","datacontenttype":"application/json","tenant":"t1",` +
		`"data":{"component":"usd","error":"no such key: kind","attempts":1,"event":{"id":"a:1","type":"a","source":"a","data":{"x":1}}}}`)
	d, err := ParseDeadLetter(line)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := d.Original()
	if err != nil {
		t.Fatal(err)
	}
	if d.Component != "usd" || ev.ID != "a:1" || !bytes.Equal(ev.Data, []byte(`{"x":1}`)) || ev.Metadata["tenant"] != "t1" {
		t.Fatalf("got %+v / %+v", d, ev)
	}
	if _, err := ParseDeadLetter([]byte(`{"id":1}`)); !errors.Is(err, ErrNotDeadLetter) {
		t.Fatalf("a line that is no dead letter: %v", err)
	}
}

// A payload that is not even UTF-8 goes into data_base64 and comes back
// byte for byte; the record stays strict JSON.
func TestDeadLetterNonUTF8RoundTrip(t *testing.T) {
	data := []byte("{\"name\":\"\xff\xfe\"}")
	d := NewDeadLetter("p", errors.New("bad"), 1, &Event{ID: "in:1", Data: data})
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateJSON(b); err != nil {
		t.Fatalf("record is not strict JSON: %v\n%s", err, b)
	}
	var back DeadLetter
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	ev, err := back.Original()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Data, data) {
		t.Fatalf("data = %q, want %q", ev.Data, data)
	}
}
