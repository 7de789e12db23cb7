"""Machine-level helpers every layer above may use: device and dtype choice (``device``), peak
memory (``memory``), stage timing (``timing``) and figures (``plots``). One of each; nothing here
imports torch or matplotlib at module level."""
