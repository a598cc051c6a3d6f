// Package osfile holds the few file operations whose behaviour differs by operating system, each with its
// documented fallback where the system lacks the feature:
//
//   - SyncDir makes a rename or removal durable by fsyncing the directory (unix); a no-op elsewhere.
//   - ID identifies a file by device and inode (unix); elsewhere there is none, and callers identify a file
//     by its size and modification time only.
//   - ONonblock opens a named pipe without waiting for a writer (unix); 0 elsewhere.
package osfile
