// Command stdiomap is the W1 map step (amount_usd = amount / 100,
// upper-case kind) as a stdio component (docs/protocols.md), written in
// Go with the SDK's field helpers so that its own share of the hop stays
// small: bench/external/run.sh runs it as w1-stdio.yaml's processor to
// measure the stdio hop beside the gRPC one. It reads
// {"seq":N,"event":{…,"data":{…}}} lines and answers each with
// {"seq":N,"data":{…},"done":true}, flushing whenever stdin has nothing
// more buffered; it exits at EOF.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/pkg/sdk"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "stdiomap:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	br := bufio.NewReaderSize(in, 64<<10)
	bw := bufio.NewWriterSize(out, 64<<10)
	var buf []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != io.EOF {
			return err // a line longer than the buffer, or a read error
		}
		if len(line) > 0 {
			var aerr error
			if buf, aerr = answer(buf[:0], line); aerr != nil {
				return aerr
			}
			if _, werr := bw.Write(buf); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return bw.Flush()
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
}

// answer appends the answer to one input line.
func answer(b, line []byte) ([]byte, error) {
	msg := sdk.Event{Data: line}
	seq, ok := msg.Field("seq").Int()
	if !ok {
		return b, fmt.Errorf("a line without seq: %.80s", line)
	}
	ev := sdk.Event{Data: msg.Field("event").Raw()}
	e := sdk.Event{Data: append([]byte(nil), ev.Field("data").Raw()...)}
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	amount, _ := e.Field("amount").Float()
	kind, _ := e.Field("kind").Str()
	if err := e.SetField("amount_usd", amount/100); err != nil {
		b = append(b, `,"error":"payload is not a JSON object","permanent":true}`+"\n"...)
		return b, nil
	}
	if err := e.SetField("kind", strings.ToUpper(kind)); err != nil {
		return b, err
	}
	b = append(b, `,"data":`...)
	b = append(b, e.Data...)
	return append(b, `,"done":true}`+"\n"...), nil
}
