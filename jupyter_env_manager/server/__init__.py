"""The REST door: the Jupyter server extension (:mod:`.app`), its handlers and route table
(:mod:`.handlers`), the event schemas (``events/``) and the bridge to jupyter_events
(:mod:`.events`)."""
