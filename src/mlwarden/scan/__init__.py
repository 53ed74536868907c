"""Static analysis of model files, containers and folders. Never imports or runs what it reads.

`mlwarden.scan.api.scan` is the entry point; `formats/` holds one module per file format;
`pickle/` is the symbolic pickle machine; `policy` says which globals are safe.
"""
