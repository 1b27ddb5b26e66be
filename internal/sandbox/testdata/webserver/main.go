// Command webserver is a tiny HTTP service for the sandbox's container
// test: built with CGO_ENABLED=0 into a FROM-scratch image, it serves
// /health on $PORT (answering $GREETING) and exits 0 on SIGTERM. Standard
// library only.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getenv("GREETING")) })
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("PORT"), Handler: mux}
	go func() {
		<-ctx.Done()
		fmt.Println("got SIGTERM")
		srv.Close()
	}()
	fmt.Println("serving on", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
