{
  "targets": [{
    "target_name": "fdtake",
    "sources": ["fdtake.c"],
    "cflags": ["-O2", "-Wall", "-Wextra"]
  }]
}
