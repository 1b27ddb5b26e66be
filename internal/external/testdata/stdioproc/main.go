// Command stdioproc is a `protocol: stdio` processor for the docker
// end-to-end test: it upper-cases data.kind of every input and answers
// with the new payload and the end marker in one line; it exits at end
// of input.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		var msg struct {
			Seq   int64 `json:"seq"`
			Event struct {
				Data map[string]any `json:"data"`
			} `json:"event"`
		}
		if err := json.Unmarshal(in.Bytes(), &msg); err != nil {
			fmt.Fprintln(os.Stderr, "bad input:", err)
			continue
		}
		data := msg.Event.Data
		if k, ok := data["kind"].(string); ok {
			data["kind"] = strings.ToUpper(k)
		}
		b, _ := json.Marshal(map[string]any{"seq": msg.Seq, "data": data, "done": true})
		out.Write(append(b, '\n'))
		out.Flush()
	}
	out.Flush()
	fmt.Fprintln(os.Stderr, "stdioproc: end of input")
}
