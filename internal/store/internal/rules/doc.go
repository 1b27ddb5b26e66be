// Package rules holds the semantics every store backend shares — what
// PutPipeline decides, how runs are numbered and ordered — so that the
// backends differ only in where they keep the records.
//
// It imports the store domain only.
package rules
