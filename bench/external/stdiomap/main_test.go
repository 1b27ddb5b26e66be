package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"maps amount and kind",
			`{"seq":1,"event":{"id":"l:1","type":"ledger","data":{"id":1,"amount":12345,"kind":"payment"}}}` + "\n",
			`{"seq":1,"data":{"id":1,"amount":12345,"kind":"PAYMENT","amount_usd":123.45},"done":true}` + "\n"},
		{"several lines, the last without a newline",
			`{"seq":1,"event":{"data":{"amount":5000,"kind":"fee"}}}` + "\n" + `{"seq":2,"event":{"data":{"amount":7000,"kind":"trade"}}}`,
			`{"seq":1,"data":{"amount":5000,"kind":"FEE","amount_usd":50},"done":true}` + "\n" +
				`{"seq":2,"data":{"amount":7000,"kind":"TRADE","amount_usd":70},"done":true}` + "\n"},
		{"not an object",
			`{"seq":3,"event":{"data":[1]}}` + "\n",
			`{"seq":3,"error":"payload is not a JSON object","permanent":true}` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(strings.NewReader(c.in), &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Fatalf("got\n%s\nwant\n%s", out.String(), c.want)
			}
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if !json.Valid([]byte(l)) {
					t.Fatalf("not a JSON line: %s", l)
				}
			}
		})
	}
	if err := run(strings.NewReader(`{"event":{}}`+"\n"), &bytes.Buffer{}); err == nil {
		t.Fatal("a line without seq was answered")
	}
}
