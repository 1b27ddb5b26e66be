// Command token-transfer is a flowctl processor written with the Go SDK:
// it turns each recorded Stellar ledger (one event per ledger, from
// examples/stellar/ledgers.jsonl) into one event per movement of value —
// transfer, mint, burn, clawback, fee — in the manner of the Stellar token
// transfer processor. Each output keeps the ledger's place as the
// stellar_cursor metadata value "LEDGER:TRANSACTION", and an id that is the
// same on every replay.
//
// A ledger that does not have the expected shape is a permanent error: the
// event goes to the pipeline's dead letters with the reason, and the rest
// flows on.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/flowctl/flowctl/pkg/sdk"
)

// TypePrefix starts every output event type; the kind follows
// (stellar.token_transfer.mint, …), so a pipeline can route by kind.
const TypePrefix = "stellar.token_transfer."

func process(_ context.Context, e *sdk.Event) ([]*sdk.Event, error) {
	var l Ledger
	if err := json.Unmarshal(e.Data, &l); err != nil {
		return nil, sdk.Permanent(fmt.Errorf("not a ledger: %w", err))
	}
	ts, err := Transfers(&l)
	if err != nil {
		return nil, sdk.Permanent(err)
	}
	closed, _ := time.Parse(time.RFC3339, l.ClosedAt)
	out := make([]*sdk.Event, 0, len(ts))
	for i := range ts {
		t := &ts[i]
		ev := &sdk.Event{
			ID:       t.ID,
			Source:   e.Source,
			Type:     TypePrefix + t.Kind,
			Subject:  t.TxHash,
			Time:     closed,
			Metadata: map[string]string{"stellar_cursor": fmt.Sprintf("%d:%d", t.LedgerSequence, t.TransactionIndex)},
		}
		if err := ev.SetJSON(t); err != nil {
			return nil, sdk.Permanent(err)
		}
		out = append(out, ev)
	}
	return out, nil
}

func main() {
	info := sdk.Info{Name: "token-transfer", Version: "0.1.0", Description: "Stellar ledgers to token transfer events"}
	if err := sdk.Serve(context.Background(), sdk.ProcessorFunc(process), sdk.WithInfo(info)); err != nil {
		log.Fatal(err)
	}
}
