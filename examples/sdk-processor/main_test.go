package main

import (
	"context"
	"testing"

	"github.com/flowctl/flowctl/pkg/sdk"
)

func TestUSD(t *testing.T) {
	cases := []struct {
		name, in, want string
		permanent      bool
	}{
		{"maps amount and kind", `{"amount":12345,"id":7,"kind":"payment"}`, `{"amount":12345,"amount_usd":123.45,"id":7,"kind":"PAYMENT"}`, false},
		{"missing fields", `{}`, `{"amount_usd":0,"kind":""}`, false},
		{"not JSON", `nope`, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := usd(context.Background(), &sdk.Event{ID: "e", Data: []byte(c.in)})
			if c.permanent {
				if !sdk.IsPermanent(err) {
					t.Fatalf("err = %v, want a permanent error", err)
				}
				return
			}
			if err != nil || len(out) != 1 || string(out[0].Data) != c.want {
				t.Fatalf("got %v %v, want %s", out, err, c.want)
			}
		})
	}
}
