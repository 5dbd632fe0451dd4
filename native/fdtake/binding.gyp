{
  "targets": [{
    "target_name": "fdtake",
    "sources": ["fdtake.c", "pump.c"],
    "cflags": ["-O2", "-Wall", "-Wextra"]
  }]
}
