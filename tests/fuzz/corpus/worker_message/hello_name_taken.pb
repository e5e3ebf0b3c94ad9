
)
fuzz-b	
h (0:0.1.0BotherH{