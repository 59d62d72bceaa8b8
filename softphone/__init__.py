"""The agent desktop (ACD client and SIP UA over ``media``): arrives with the ACD issue."""
