// Command sdkroles is a well-behaved sink or source written with the Go SDK,
// for the conformance tests of those roles: `sdkroles sink` acknowledges
// every batch, `sdkroles source` emits numbered events until stopped.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/flowctl/flowctl/pkg/sdk"
)

func main() {
	role := "sink"
	if len(os.Args) > 1 {
		role = os.Args[1]
	}
	var c any
	switch role {
	case "sink":
		c = sdk.SinkFunc(func(context.Context, []*sdk.Event) error { return nil })
	case "source":
		c = sdk.SourceFunc(func(ctx context.Context, emit sdk.EmitFunc) error {
			for i := 1; ; i++ {
				e := &sdk.Event{ID: fmt.Sprintf("n-%d", i), Type: "number", Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
				if err := emit(ctx, e); err != nil {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
	default:
		log.Fatalf("usage: sdkroles sink|source")
	}
	if err := sdk.Serve(context.Background(), c, sdk.WithInfo(sdk.Info{Name: "sdkroles-" + role, Version: "1"})); err != nil {
		log.Fatal(err)
	}
}
