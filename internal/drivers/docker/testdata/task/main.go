// Command task is the docker driver tests' program, run in a FROM-scratch
// image. Its first argument picks what it does:
//
//	env K...      print K=value for each variable K, then exit 0
//	exit N        print "exiting N" on stderr and exit N
//	serve [ignore-term]
//	              print "ready" and wait; on SIGTERM print "got SIGTERM" on
//	              stderr and exit 0 (with ignore-term: ignore it)
//	cat           copy stdin to stdout line by line as "echo: LINE"; at
//	              end of input print "eof" on stderr and exit 0
//	lines N       print "out I" on stdout and "err I" on stderr, I < N
//	dial ADDR     connect to ADDR over TCP, send "hello", exit 0
//	write FILE T  write T to FILE, exit 0
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: task MODE ARGS")
		os.Exit(64)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "env":
		for _, k := range args {
			v, ok := os.LookupEnv(k)
			if !ok {
				v = "<unset>"
			}
			fmt.Printf("%s=%s\n", k, v)
		}
	case "exit":
		n, _ := strconv.Atoi(args[0])
		fmt.Fprintf(os.Stderr, "exiting %d\n", n)
		os.Exit(n)
	case "serve":
		sig := make(chan os.Signal, 1)
		if len(args) > 0 && args[0] == "ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		} else {
			signal.Notify(sig, syscall.SIGTERM)
		}
		fmt.Println("ready")
		if len(args) > 0 && args[0] == "ignore-term" {
			for {
				time.Sleep(time.Hour)
			}
		}
		<-sig
		fmt.Fprintln(os.Stderr, "got SIGTERM")
	case "cat":
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Printf("echo: %s\n", sc.Text())
		}
		fmt.Fprintln(os.Stderr, "eof")
	case "lines":
		n, _ := strconv.Atoi(args[0])
		for i := range n {
			fmt.Printf("out %d\n", i)
			fmt.Fprintf(os.Stderr, "err %d\n", i)
		}
	case "dial":
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprint(c, "hello")
		c.Close()
	case "write":
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", os.Args[1])
		os.Exit(64)
	}
}
