// skiff-runc: an OCI runtime (runc-compatible command line). The logic lives in SkiffLauncher;
// this file only hands over the arguments.
//
// Single-threaded on purpose: no Foundation, Dispatch or async main anywhere on this path, because
// entering namespaces and forking into a new PID namespace need a process with one thread.

import SkiffLauncher
#if canImport(Glibc)
import Glibc
#endif

exit(SkiffRuncCLI.main(CommandLine.arguments))
