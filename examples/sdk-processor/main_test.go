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
		{"maps amount and kind", `{"amount":12345,"id":7,"kind":"payment"}`, `{"amount":12345,"id":7,"kind":"PAYMENT","amount_usd":123.45}`, false},
		{"missing fields", `{}`, `{"amount_usd":0,"kind":""}`, false},
		{"replaces amount_usd", `{"amount":5000,"amount_usd":"x","kind":"fee"}`, `{"amount":5000,"amount_usd":50,"kind":"FEE"}`, false},
		{"spaces and nesting", ` { "kind" : "trade" , "n" : {"amount":1}, "amount": 7.5e2 } `, ` { "kind" : "TRADE" , "n" : {"amount":1}, "amount": 7.5e2 ,"amount_usd":7.5} `, false},
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
