"""The gradio web UI (``lmforge webui``): ``app`` builds and launches it, ``chat`` is the Chat tab,
``train`` the Train tab, ``form`` the schema-generated config form, ``training`` the training
subprocess it starts."""
