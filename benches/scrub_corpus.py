#!/usr/bin/env python3
"""Generate a labelled free-text PII corpus to benchmark sluice's `scrub` transform.

Writes JSON Lines (stdout or --out FILE). Line 1, the header: {"known_names": ["Anna Becker", ...]},
~400 people "First Last" standing for the masked name columns of the same database (a scrubber may
use them, and their first and last names alone). Then one snippet a line: a support ticket, CRM
note, chat, log lines (English) or e-mail signature in the locale's language:

  {"locale": "de_de", "text": "...", "pii": [{"kind": "email", "value": "..."}, ...],
   "decoys": [{"cat": "order", "value": "..."}, ...]}

locales: en_us en_gb de_de fr_fr it_it pt_br. pii kinds: email, phone_intl, phone_national, card
(Luhn-valid Visa / Mastercard / Amex, 13-19 digits), iban (valid mod 97: DE FR IT GB ES NL PT), ssn
(US), national_id (DE Steuer-ID, FR NIR, IT codice fiscale, UK NINO, BR CPF; valid check digits),
ipv4, ipv6, street, person_name (a full, first or last name: the exact tokens of a known name).
Decoy cats, text that is not PII and must stay unchanged: order, invoice, date, time, price, qty,
version (3 parts, never IPv4-shaped), sku, tracking, http, percent, ticket, luhn_bad (card-shaped,
Luhn-invalid), iban_bad (wrong check digits), word (lower-case words that are first names: may,
will, rosa ...), name_word (lower-case words equal to a known surname: price, klein, petit, conti,
branco), capword (capitalised common word opening a sentence), city, company, product. No 12-19
digit run in a decoy passes the Luhn check.

Checked per snippet: every value is a substring of text, every occurrence of a pii value lies in a
pii span, no occurrence of a decoy overlaps one; replacing exactly the pii values is a perfect score.
benches/scrub_score.py takes the scrubbed texts (one {"text": ...} a line, in order) and reports
  recall of a kind  share of its pii values no longer present in the scrubbed text
  decoy survival    share of decoys present at least as often as before (the precision proxy)
both on whole tokens (no letter or digit may adjoin a value that starts / ends with one).

Usage: python3 benches/scrub_corpus.py [--n 2400] [--seed 1] [--out FILE]
All data is made up: names from the lists below, phone numbers mostly in fictional ranges (US
555-01xx, UK Ofcom drama ranges), mail domains example.com/.net/.org and .example.
"""

import argparse
import itertools
import json
import random
import re
import signal
import sys
import unicodedata

LOCALES = ["en_us", "en_gb", "de_de", "fr_fr", "it_it", "pt_br"]
PEOPLE_PER_LOCALE = 67

# Names that are common words are avoided (no Will, May, Mark, Bill, Grace, Rose, Claire, Pierre,
# Rosa, Clara, Serena, Franco, Austin, Hugo; no Baker, Koch, Bauer, Sommer, Costa, Santos, ...):
# those words occur as decoys, in street names or as cities. Deliberately included: one surname
# per locale whose lower-case form is an ordinary word, used by the name_word decoys: Price/price
# (en_us and en_gb), Klein/klein, Petit/petit, Conti/conti, Branco/branco.
#
# Locale data: one "key: a | b | c" entry a line (indented lines continue it); `first` and `last`
# split on spaces; `lab` maps a field to its labels ("field=label|label; ..."). Phone and street
# patterns: '#' a digit, '%' a digit 1-9, '~' a digit 2-9. Templates: "{}" in `say` takes the
# "label value" fields; {first} {last} {full} {initial} are the snippet's person, {date} {city} ...
# a generated decoy, {w:x} {n:x} {c:x} the literal decoy x of category word / name_word / capword.
TEXT = """
[en]
lab: email=email|e-mail|Email; phone=phone|cell|Phone; card=card|card number|CC; iban=IBAN|bank account (IBAN);
  ssn=SSN|Social Security No.; national_id=NI number|NINO; ip=IP|IP address|client IP;
  street=address|shipping address|ship to; order=order|Order; invoice=invoice|Invoice; date=on|dated;
  time=at|around; price=total|amount; qty=qty|quantity; version=app version|version|firmware; sku=item|article;
  tracking=tracking|tracking no.; http=response|result; percent=discount|tax; ticket=ticket|case;
  luhn_bad=ref|transaction ref|auth no.; iban_bad=IBAN
say: Customer gave {}. | Please verify {}. | Updated {}. | Note: {}. | Per the customer, {}.
greet: Hi {first}, | Hello {full}, | Dear {full}, | Hey {first}!
about: Customer {full} called about the order. | {full} asked to update the account. | Spoke with {first} today.
  | Callback requested by {last}, {first}.
sign: Thanks,\\n{full} | Best,\\n{first} | Regards, {initial}. {last} | Cheers, {full}
open: Hello, | Hi team,
close: Thanks! | Best regards, Support Team
who: Customer | Agent
free: You {w:may} need to restart the app. | We {w:will} ship it tomorrow. | Please {w:mark} the ticket as urgent.
  | The {w:bill} was sent twice. | There is a 30-day {w:grace} period. | The {n:price} includes tax.
  | {c:Will} the parcel arrive before {date}? | {c:May} I get an update? | {c:Thanks} for your patience.
  | Shipped from our {city} warehouse. | Delivery by {company}. | Device: {product}, firmware {version}.
[en_us]
first: James Olivia Ethan Madison Tyler Brooke Caleb Hannah Logan Chloe Dylan Kayla Jordan Megan Brandon Lauren
  Kevin Ashley Nathan Jessica
last: Johnson Williams Miller Davis Garcia Rodriguez Martinez Anderson Thompson Robinson Walker Ramirez Nguyen
  Sanchez Peterson Kowalski Donovan Jenkins Alvarez Price
intl: +1 (~##) 555-01## | +1 ~##-555-01## | +1.~##.555.01## | +1 ~## 555 01##
national: (~##) 555-01## | ~##-555-01## | ~##.555.01##
street: % Elm Street | %# Oak Avenue | %### Maple Dr. | %## Cedar Lane | %# Sunset Boulevard
  | %### Lakeview Road | %## Pine St. | %# Hillcrest Ave
city: Chicago | Boston | Denver | Seattle | Portland | Phoenix
company: Acme Corp | Northwind Traders | Bluepeak Logistics | Brightwave Inc.
[en_gb]
first: Oliver Amelia Harry Isla George Freya Alfie Poppy Archie Imogen Callum Niamh Rhys Eleanor Declan Siobhan Euan
  Harriet Rory Ffion
last: Clarke Hughes Evans Davies Patel Wright Roberts Turner Phillips Harrison Gallagher Fletcher McAllister
  Pritchard Whitaker Ashworth Cartwright Kendrick Osborne Price
intl: +44 20 7946 0### | +44 (0)20 7946 0### | +44 7700 900### | +44 161 496 0### | +447700900###
national: 020 7946 0### | 07700 900### | 0161 496 0### | (020) 7946 0###
street: 221B Baker Street | %# High Street | % Church Lane | %## Station Road | %# Mill Road | % Victoria Road
  | %# Queen's Road
iban: GB
city: London | Leeds | Manchester | Bristol | Glasgow | Cardiff
company: Brightwave Ltd | Thameside Couriers Ltd | Acme UK plc | Northgate Supplies
[de_de]
first: Jonas Anna Lukas Lena Felix Hannah Maximilian Marie Tobias Katharina Niklas Johanna Florian Sophie Jannik
  Leonie Matthias Franziska Sebastian Carolin
last: Becker Schneider Hoffmann Schäfer Weber Zimmermann Krüger Hartmann Schulze Lehmann Köhler Neumann Wagner
  Schröder Dietrich Brandt Kühn Seidel Vogt Klein
intl: +49 1555 ####### | (+49) 1555 ###### | +49 30 ####### | +49 (0)30 ######## | +49-157-######## | +49155########
  | 0049 89 #######
national: 0157-######## | 030 ####### | 030/####### | (089) ######## | 0176 ######## | 0221 ######
street: Hauptstraße % | Musterweg %#a | Lindenallee % | Am Markt % | Goethestr. %# | Bahnhofstraße %# | Birkenweg %b
  | Schillerplatz % | Mühlenring %#
iban: DE
lab: email=E-Mail|Mail; phone=Tel.|Telefon|Handy; card=Kreditkarte|Kartennr.; iban=IBAN|Bankverbindung;
  ssn=US-SSN|SSN; national_id=Steuer-ID|Steuer-IdNr.; ip=IP|IP-Adresse; street=Adresse|Lieferadresse|Anschrift;
  order=Bestellung|Bestellnr.; invoice=Rechnung|Rechnungsnr.; date=vom|am|Datum; time=um|gegen;
  price=Betrag|Summe; qty=Menge; version=Version|App-Version; sku=Artikel|Art.-Nr.; tracking=Sendungsnr.|Tracking;
  http=Fehler|Antwort; percent=Rabatt|MwSt.; ticket=Vorgang|Ticket; luhn_bad=Referenz|Transaktions-ID; iban_bad=IBAN
say: Kunde hat {} angegeben. | Bitte prüfen: {}. | Geändert: {}. | Notiz: {}. | Laut Anruf {}.
greet: Hallo {first}, | Guten Tag {full}, | Hi {first}!
about: Kunde {full} hat angerufen. | {full} bittet um Rückruf. | Rückfrage von {last}, {first}.
  | Mit {first} telefoniert.
sign: Viele Grüße\\n{full} | Gruß {first} | MfG {initial}. {last} | Beste Grüße, {full}
open: Hallo, | Guten Tag,
close: Viele Grüße, Ihr Support-Team | Danke!
who: Kunde | Support
free: Die Box ist zu {n:klein}. | Farbe: {w:rosa}, Größe M. | Das Display ist {n:klein} und {w:rosa}.
  | {c:Leider} ist der Artikel in {city} nicht vorrätig. | {c:Danke} für Ihre Geduld!
  | {c:Heute} kam nur ein Teil an. | Versand durch {company}. | Gerät: {product}, Firmware {version}.
city: Berlin | Hamburg | München | Köln | Leipzig | Dresden
company: Nordlicht Logistik GmbH | Sonnenhof Versand AG | Alpenblick Technik GmbH
[fr_fr]
first: Camille Lucas Manon Léa Théo Chloé Mathis Inès Nathan Jade Louis Zoé Antoine Margaux Julien Océane
  Baptiste Élodie Romain Amandine
last: Martin Bernard Dubois Moreau Laurent Lefebvre Girard Boyer Dupont Lambert Masson Rousseau Mercier Garnier
  Faure Gauthier Perrin Morel Chevalier Petit
intl: +33 6 ## ## ## ## | +33 (0)1 ## ## ## ## | +33 7 ## ## ## ## | +336######## | 0033 6 ## ## ## ##
national: 06 ## ## ## ## | 01.##.##.##.## | 07######## | 04-##-##-##-##
street: % rue de la Paix | %# avenue Jean Jaurès | % bis boulevard Voltaire | %#, rue des Lilas | %# rue du Moulin
  | % impasse des Écoles | %## avenue de la République
iban: FR
lab: email=e-mail|courriel|mail; phone=tél.|téléphone|portable; card=carte|n° de carte; iban=IBAN|RIB (IBAN);
  ssn=SSN (US); national_id=n° de sécu|NIR; ip=IP|adresse IP; street=adresse|adresse de livraison;
  order=commande|n° de commande; invoice=facture; date=le|du; time=à|vers; price=montant|total; qty=quantité;
  version=version|version de l'app; sku=article|réf. article; tracking=suivi|n° de suivi; http=erreur|réponse;
  percent=remise|TVA; ticket=ticket|dossier; luhn_bad=réf.|n° de transaction; iban_bad=IBAN
say: Le client a indiqué {}. | Merci de vérifier {}. | Modifié : {}. | Note : {}. | D'après le client, {}.
greet: Bonjour {first}, | Bonjour {full}, | Salut {first} !
about: Le client {full} a appelé. | {full} demande un rappel. | Rappel demandé par {last}, {first}.
  | Échange avec {first} ce matin.
sign: Cordialement,\\n{full} | Bien à vous, {first} | Cdlt, {initial}. {last} | Merci, {full}
open: Bonjour, | Madame, Monsieur,
close: Cordialement, le service client | Merci !
who: Client | Conseiller
free: Le colis est trop {n:petit}. | Un {n:petit} souci avec l'écran. | Couleur : {w:rose}.
  | Il faut une réponse {w:claire}. | {c:Malheureusement} l'article n'est plus disponible à {city}.
  | {c:Merci} pour votre patience. | Livraison par {company}. | Appareil : {product}, firmware {version}.
city: Paris | Lyon | Marseille | Toulouse | Nantes | Bordeaux
company: Atelier Lumière SARL | Transports Azur SAS | Solutions Horizon SA
[it_it]
first: Giulia Marco Chiara Luca Francesca Matteo Alessia Davide Martina Lorenzo Federica Simone Valentina Andrea
  Elisa Riccardo Sara Gabriele Silvia Tommaso
last: Rossi Ferrari Esposito Colombo Ricci Marino Greco Moretti Barbieri Lombardi Giordano Mancini Rinaldi Caruso
  Santoro Mariani Pellegrini Vitale Bellini Conti
intl: +39 06 #### #### | +39 3## ### #### | +39 02 ######## | 0039 3## #######
national: 06 #### #### | 3## ### #### | 02-######## | (06) ########
street: Via Garibaldi %# | Via Mazzini, % | Piazza Cavour % | Corso Italia %## | Viale Dante %#/A | Via Verdi, %#
iban: IT
lab: email=email|e-mail|posta; phone=tel.|telefono|cellulare; card=carta|n. carta; iban=IBAN|conto (IBAN);
  ssn=SSN (USA); national_id=codice fiscale|CF; ip=IP|indirizzo IP; street=indirizzo|indirizzo di consegna;
  order=ordine|n. ordine; invoice=fattura; date=del|il; time=alle|verso le; price=importo|totale; qty=quantità;
  version=versione; sku=articolo|cod. art.; tracking=tracking|n. spedizione; http=errore|risposta;
  percent=sconto|IVA; ticket=ticket|pratica; luhn_bad=rif.|ID transazione; iban_bad=IBAN
say: Il cliente ha indicato {}. | Verificare {}. | Aggiornato: {}. | Nota: {}. | Secondo il cliente {}.
greet: Ciao {first}, | Buongiorno {full}, | Gentile {full},
about: Il cliente {full} ha chiamato. | {full} chiede di essere richiamato. | Richiamata richiesta da {last}, {first}.
  | Sentito {first} stamattina.
sign: Cordiali saluti,\\n{full} | Grazie, {first} | Saluti, {initial}. {last} | A presto, {full}
open: Buongiorno, | Salve,
close: Cordiali saluti, il servizio clienti | Grazie!
who: Cliente | Operatore
free: I {n:conti} non tornano. | Ho controllato i {n:conti} del mese. | Colore: {w:rosa}. | Resa {w:franco} magazzino.
  | {c:Purtroppo} l'articolo non è disponibile a {city}. | {c:Grazie} per la pazienza.
  | Consegna tramite {company}. | Dispositivo: {product}, firmware {version}.
city: Milano | Torino | Napoli | Bologna | Firenze | Palermo
company: Tecnoservizi S.r.l. | Spedizioni Adriatica S.p.A. | Officine Aurora S.r.l.
[pt_br]
first: João Ana Pedro Beatriz Lucas Larissa Gabriel Fernanda Rafael Juliana Thiago Camila Mateus Letícia Gustavo
  Bruna Felipe Mariana Vinícius Isabela
last: Silva Oliveira Souza Rodrigues Ferreira Alves Pereira Carvalho Gomes Ribeiro Almeida Nascimento Araújo Barbosa
  Cardoso Moreira Teixeira Mendes Machado Branco
intl: +55 11 9####-#### | +55 (21) 9####-#### | +55 21 ~###-#### | +5511 9########
national: (11) 9####-#### | 11 9####-#### | (21) ~###-#### | (31) 9####-####
street: Rua das Flores, %## | Av. Paulista, %### | Rua Augusta %## | Avenida Brasil, %## | Rua Tiradentes, %# |
  Alameda Santa Rosa, %##
iban: PT
lab: email=e-mail|email; phone=tel.|telefone|celular|WhatsApp; card=cartão|nº do cartão; iban=IBAN; ssn=SSN (EUA);
  national_id=CPF; ip=IP|endereço IP; street=endereço|endereço de entrega; order=pedido|nº do pedido;
  invoice=nota fiscal|fatura; date=em|dia; time=às|por volta das; price=valor|total; qty=quantidade;
  version=versão; sku=produto|cód.; tracking=rastreio|código de rastreio; http=erro|resposta; percent=desconto;
  ticket=chamado|protocolo; luhn_bad=ref.|ID da transação; iban_bad=IBAN
say: O cliente informou {}. | Favor verificar {}. | Atualizado: {}. | Obs.: {}. | Segundo o cliente, {}.
greet: Olá {first}, | Oi {first}! | Prezado(a) {full},
about: O cliente {full} ligou. | {full} pediu retorno. | Retorno solicitado por {last}, {first}.
  | Falei com {first} hoje.
sign: Atenciosamente,\\n{full} | Abraço, {first} | Att., {initial}. {last} | Obrigado, {full}
open: Olá, | Bom dia,
close: Atenciosamente, equipe de suporte | Obrigado!
who: Cliente | Atendente
free: O tênis {n:branco} veio com defeito. | Cor: {w:rosa}. | Prefiro a versão {w:clara}.
  | O frete saiu de {w:graça}.
  | {c:Infelizmente} o produto está esgotado em {city}. | {c:Obrigado} pela paciência.
  | Entrega pela {company}. | Aparelho: {product}, firmware {version}.
city: São Paulo | Rio de Janeiro | Belo Horizonte | Curitiba | Recife | Porto Alegre
company: Loja Estrela Ltda. | TransSul Logística S.A. | Casa Aurora Comércio Ltda.
"""
PRODUCTS = ["Model X Pro", "AirFlow 2 Max", "SmartHub Mini", "PowerBank 20K", "Notebook Slim 14", "Router AX3000"]

IBAN_BBAN = {"DE": "#" * 18, "FR": "#" * 23, "IT": "@" + "#" * 22, "GB": "@@@@" + "#" * 14, "ES": "#" * 20,
             "NL": "@@@@" + "#" * 10, "PT": "#" * 21}
MAIL_DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "kunde.example", "corp.example",
                "shop.example.net"]

PII_KINDS = ["email", "phone_intl", "phone_national", "card", "iban", "ssn", "national_id", "ipv4", "ipv6",
             "street", "person_name"]
FIELD_DECOYS = ["order", "invoice", "date", "time", "price", "qty", "version", "sku", "tracking", "http",
                "percent", "ticket", "luhn_bad", "iban_bad"]
FREE_SLOT = {"word": "{w:", "name_word": "{n:", "capword": "{c:", "city": "{city}", "company": "{company}",
             "product": "{product}"}  # decoys that come in a whole sentence of `free`
SHORT = {"w": "word", "n": "name_word", "c": "capword"}
LABEL_KEY = {"phone_intl": "phone", "phone_national": "phone", "ipv4": "ip", "ipv6": "ip"}
LOG_KEY = {"national_id": "tax_id", "street": "addr", "price": "amount", "version": "app", "http": "status",
           "percent": "discount", "luhn_bad": "ref", "iban_bad": "iban_old"}
CARD_RUN = re.compile(r"\b[0-9](?:[ -]?[0-9]){11,18}\b")


def parse_text(src):
    """TEXT -> {locale: {key: [values]}}, `lab` as {field: [labels]}; [en] is the base of en_*."""
    out, cur, key = {}, None, None
    for line in src.strip().splitlines():
        if line.startswith("["):
            cur = out.setdefault(line.strip("[]"), {})
            continue
        if not line.startswith(" "):
            key, line = line.split(": ", 1)
            cur[key] = ""
        cur[key] += " " + line.strip()
    for d in out.values():
        for k, v in d.items():
            if k == "lab":
                d[k] = {f.split("=")[0].strip(): f.split("=")[1].strip().split("|") for f in v.split(";")}
            elif k in ("first", "last", "iban"):
                d[k] = v.split()
            else:
                d[k] = [s.strip().replace("\\n", "\n") for s in v.strip().lstrip("|").split(" | ")]
    for loc in ("en_us", "en_gb"):
        out[loc] = {**out["en"], **out[loc]}
    return out


L10N = parse_text(TEXT)


# ---------------------------------------------------------------- value generators

def fill(r, pat):
    pick = {"#": "0123456789", "%": "123456789", "~": "23456789", "@": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    return "".join(r.choice(pick[c]) if c in pick else c for c in pat)


def luhn_check(payload):
    s = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        s += d - 9 if d > 9 else d
    return str((10 - s % 10) % 10)


def card(r, valid=True):
    prefix, n, sizes = r.choice([("4", 16, [4, 4, 4, 4]), ("4", 13, [4, 4, 5]), ("4", 19, [4, 4, 4, 4, 3]),
                                 (str(r.randint(51, 55)), 16, [4, 4, 4, 4]),
                                 (str(r.randint(2221, 2720)), 16, [4, 4, 4, 4]),
                                 (r.choice(["34", "37"]), 15, [4, 6, 5])])
    body = prefix + fill(r, "#" * (n - len(prefix) - 1))
    check = luhn_check(body)
    if not valid:
        check = str((int(check) + r.randint(1, 9)) % 10)
    cuts = [0, *itertools.accumulate(sizes)]
    return r.choice([" ", " ", "-", ""]).join((body + check)[a:b] for a, b in zip(cuts, cuts[1:]))


def mod97(s):
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97


def iban(r, loc, valid=True):
    cc = L10N[loc]["iban"][0] if "iban" in L10N[loc] and r.random() < 0.5 else r.choice(sorted(IBAN_BBAN))
    bban = fill(r, IBAN_BBAN[cc])
    kk = 98 - mod97(cc + "00" + bban)
    if not valid:
        kk = next(k for k in r.sample(range(2, 99), 10) if mod97(f"{cc}{k:02d}{bban}") != 1)
    s = f"{cc}{kk:02d}{bban}"
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4)) if r.random() < 0.6 else s


def ssn(r):  # no area 000, 666 or 9xx, no group 00, no serial 0000
    area = r.choice([a for a in range(1, 900) if a != 666])
    sep = "-" if r.random() < 0.85 else " "
    return f"{area:03d}{sep}{r.randint(1, 99):02d}{sep}{r.randint(1, 9999):04d}"


def steuer_id(r):  # one digit twice among the first ten, ISO 7064 MOD 11,10 check digit
    while True:
        ds = r.sample(range(10), 9)
        ds.append(r.choice(ds))
        r.shuffle(ds)
        if ds[0]:
            break
    p = 10
    for d in ds:
        p = ((d + p) % 10 or 10) * 2 % 11
    s = "".join(map(str, ds + [(11 - p) % 10]))
    return f"{s[:2]} {s[2:5]} {s[5:8]} {s[8:]}" if r.random() < 0.5 else s


def nir(r):  # sex, year, month, department, commune, order, key = 97 - n mod 97
    parts = [str(r.randint(1, 2)), f"{r.randint(0, 99):02d}", f"{r.randint(1, 12):02d}",
             f"{r.choice([d for d in range(1, 96) if d != 20]):02d}", f"{r.randint(1, 990):03d}",
             f"{r.randint(1, 999):03d}"]
    key = f"{97 - int(''.join(parts)) % 97:02d}"
    return " ".join(parts + [key]) if r.random() < 0.6 else "".join(parts) + key


CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def codice_fiscale(r):
    s = "".join(r.choice("BCDFGLMNPRSTVZ") for _ in range(6)) + f"{r.randint(0, 99):02d}" + r.choice("ABCDEHLMPRST")
    s += f"{r.randint(1, 31) + r.choice([0, 40]):02d}" + r.choice("ABCDEFGHILM") + fill(r, "###")
    total = sum(CF_ODD[v] if i % 2 == 0 else v
                for i, v in enumerate(int(c) if c.isdigit() else ord(c) - 65 for c in s))
    return s + chr(65 + total % 26)


def nino(r):
    p = "GB"
    while p in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        p = r.choice("ABCEGHJKLMNOPRSTWXYZ") + r.choice("ABCEGHJKLMNPRSTWXYZ")
    d, s = fill(r, "######"), r.choice("ABCD")
    return f"{p} {d[:2]} {d[2:4]} {d[4:]} {s}" if r.random() < 0.6 else f"{p}{d}{s}"


def cpf(r):
    ds = [0] * 9
    while len(set(ds)) == 1:
        ds = [r.randint(0, 9) for _ in range(9)]
    for n in (10, 11):
        ds.append(sum(d * (n - i) for i, d in enumerate(ds)) * 10 % 11 % 10)
    s = "".join(map(str, ds))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"


NATIONAL_ID = {"en_gb": nino, "de_de": steuer_id, "fr_fr": nir, "it_it": codice_fiscale, "pt_br": cpf}


def ipv4(r):
    o = lambda lo=0, hi=255: r.randint(lo, hi)  # noqa: E731
    return r.choice([f"192.168.{o()}.{o(1, 254)}", f"10.{o()}.{o()}.{o(1, 254)}",
                     f"172.{o(16, 31)}.{o()}.{o(1, 254)}", f"203.0.113.{o(1, 254)}", f"198.51.100.{o(1, 254)}",
                     f"192.0.2.{o(1, 254)}",
                     f"{r.choice([a for a in range(1, 224) if a not in (10, 127)])}.{o()}.{o()}.{o(1, 254)}"])


def ipv6(r):
    h = lambda: f"{r.randint(0, 0xffff):x}"  # noqa: E731
    v = r.choice([f"2001:0db8:{':'.join(f'{r.randint(0, 0xffff):04x}' for _ in range(6))}",
                  "2001:db8::" + ":".join(h() for _ in range(r.randint(1, 3))),
                  "fe80::" + ":".join(h() for _ in range(4)), f"2a00:1450:{h()}:{h()}::{h()}",
                  f"::ffff:{ipv4(r)}", f"64:ff9b::{ipv4(r)}", f"2001:db8:{h()}::{ipv4(r)}"])
    return v.upper() if r.random() < 0.15 else v


def email(r, person):
    f, l = (unicodedata.normalize("NFKD", n).encode("ascii", "ignore").decode().lower() for n in person)
    local = r.choice([f"{f}.{l}", f"{f[0]}.{l}", f"{l}{r.randint(1, 99)}", f"{f}+orders", f"{f}_{l}",
                      r.choice(["info", "support", "billing", "kontakt", "contato", "assistenza"])])
    addr = f"{local}@{r.choice(MAIL_DOMAINS)}"
    return addr.title() if r.random() < 0.1 else addr


def money(r, loc):
    s = f"{r.choice([r.randint(1, 99), r.randint(100, 9999)]) + r.randint(0, 99) / 100:,.2f}"
    if loc.startswith("en"):
        return r.choice(["$", "USD "] if loc == "en_us" else ["£", "GBP "]) + s
    s = s.replace(",", "_").replace(".", ",").replace("_", "\u202f" if loc == "fr_fr" else ".")
    return r.choice({"de_de": [s + " €", "EUR " + s], "fr_fr": [s + " €"], "it_it": ["€ " + s, s + " €"],
                     "pt_br": ["R$ " + s]}[loc])


def decoy_value(r, cat, loc):
    y, m, d, n = r.randint(2021, 2025), r.randint(1, 12), r.randint(1, 28), r.randint
    if cat in ("city", "company"):
        return r.choice(L10N[loc][cat])
    return r.choice({
        "order": lambda: [f"ORD-{y}-{n(0, 999999):06d}", f"#{n(1000000, 9999999)}", fill(r, "###-#######-#######"),
                          fill(r, "A########")],
        "invoice": lambda: [f"INV-{y}-{n(1, 99999):05d}", f"RE-{y}-{n(1, 9999):04d}",
                            f"FA{y % 100}-{n(1, 999999):06d}", f"FT/{y}/{n(1, 9999):04d}"],
        "date": lambda: [f"{y}-{m:02d}-{d:02d}", {"en_us": f"{m:02d}/{d:02d}/{y}",
                                                  "de_de": f"{d:02d}.{m:02d}.{y}"}.get(loc, f"{d:02d}/{m:02d}/{y}")],
        "time": lambda: [f"{n(0, 23):02d}:{n(0, 59):02d}", f"{n(0, 23):02d}:{n(0, 59):02d}:{n(0, 59):02d}"]
        + ([f"{n(1, 12)}:{n(0, 59):02d} {r.choice(['AM', 'PM'])}"] if loc == "en_us" else []),
        "price": lambda: [money(r, loc)],
        "qty": lambda: [f"{n(2, 250)} " + {"de_de": "Stück", "fr_fr": "pièces", "it_it": "pezzi",
                                            "pt_br": "unidades"}.get(loc, "pcs")],
        "version": lambda: [f"v{n(1, 12)}.{n(0, 20)}.{n(0, 30)}", f"{n(1, 9)}.{n(0, 9)}.{n(0, 99)}-beta"],
        "sku": lambda: [fill(r, "SKU-####-@"), fill(r, "ART-#####-@@"), fill(r, "@@-###-##")],
        "tracking": lambda: [fill(r, p) for p in ("1Z###@@###########", "@@#########DE", "JJD##################",
                                                   "00340434##########")],
        "http": lambda: [f"HTTP {r.choice([400, 401, 403, 404, 409, 429, 500, 502, 503])}"],
        "percent": lambda: [f"{n(2, 30)}%", f"{n(1, 30)}.5%" if loc.startswith("en") else f"{n(1, 30)},5 %"],
        "ticket": lambda: [f"#{n(10000, 99999)}"],
        "luhn_bad": lambda: [card(r, valid=False)],
        "iban_bad": lambda: [iban(r, loc, valid=False)],
        "product": lambda: PRODUCTS,
    }[cat]())


def safe_decoy(r, cat, loc):
    """A decoy none of whose 12-19 digit runs passes the Luhn check (luhn_bad included)."""
    while True:
        v = decoy_value(r, cat, loc)
        runs = [re.sub(r"\D", "", m) for m in CARD_RUN.findall(v)]
        if not any(luhn_check(x[:-1]) == x[-1] for x in runs):
            return v


def pii_value(r, kind, loc, person):
    if kind in ("phone_intl", "phone_national"):
        return fill(r, r.choice(L10N[loc][kind[6:]]))
    if kind == "street":
        return fill(r, r.choice(L10N[loc]["street"]))
    return {"email": lambda: email(r, person), "card": lambda: card(r), "iban": lambda: iban(r, loc),
            "ssn": lambda: ssn(r), "national_id": lambda: NATIONAL_ID[loc](r), "ipv4": lambda: ipv4(r),
            "ipv6": lambda: ipv6(r)}[kind]()


# ---------------------------------------------------------------- snippets
# A snippet is a list of lines; a line a list of parts: plain strings, or (is_pii, kind or cat, value).

SLOT = re.compile(r"\{(\w*)(?::([^}]*))?\}")


def render(r, tpl, loc, person, fields=()):
    parts, pos = [], 0
    for m in SLOT.finditer(tpl):
        parts.append(tpl[pos:m.start()])
        name, arg = m.groups()
        if name == "":
            parts.extend(fields)
        elif name in ("first", "last", "full"):
            parts.append((True, "person_name", " ".join(person) if name == "full" else person[name == "last"]))
        elif name == "initial":
            parts.append(person[0][0])
        elif name in SHORT:
            parts.append((False, SHORT[name], arg))
        else:
            parts.append((False, name, safe_decoy(r, name, loc)))
        pos = m.end()
    return parts + [tpl[pos:]]


def field(r, loc, item, log=False):
    """`label value`, or `key=value` in a log line."""
    is_pii, key, value = item
    key = LABEL_KEY.get(key, key)
    if not log:
        return [r.choice(L10N[loc]["lab"][key]) + " ", item]
    if key == "http":
        item = (False, "http", value.split()[1])  # status=503
    q = '"' if " " in item[2] else ""
    return [f"{LOG_KEY.get(key, key)}={q}", item, q]


def joined(sentences, sep=" "):
    out = []
    for i, s in enumerate(sentences):
        out += ([sep] if i else []) + s
    return out


def compose(r, loc, person, kinds, decoys, name):
    """Lay the values out as a ticket, CRM note, chat, log lines or signature; returns lines and separator."""
    t = L10N[loc]
    frame = r.choices(["ticket", "crm", "chat", "log", "signature"], [30, 20, 20, 15, 15])[0]
    items = [(True, k, pii_value(r, k, loc, person)) for k in kinds]
    items += [(False, c, safe_decoy(r, c, loc)) for c in decoys if c in FIELD_DECOYS]
    r.shuffle(items)
    if frame == "log":  # English whatever the locale; the free-sentence decoys are left out
        n, lines = max(1, min(3, len(items))), []
        for i in range(n):
            line = [(False, "date", f"{r.randint(2021, 2025)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"), " ",
                    (False, "time", f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"),
                    f",{r.randint(0, 999):03d} {r.choice(['INFO', 'WARN', 'ERROR'])} "
                    f"{r.choice(['api', 'billing', 'auth', 'crm-sync'])}: "
                    + r.choice(["login ok", "payment declined", "profile updated", "webhook retry", "export done"])]
            if name and i == 0:
                line += [' user="', (True, "person_name", " ".join(person)), '"']
            for it in items[i::n]:
                line += [" "] + field(r, loc, it, log=True)
            lines.append(line)
        return lines, "\n"
    free = [render(r, r.choice([f for f in t["free"] if FREE_SLOT[c] in f]), loc, person)
            for c in decoys if c in FREE_SLOT]
    if frame == "signature":  # free sentences, then "--", the name and one field a line
        sig = [["--"]] + ([render(r, "{full}", loc, person)] if name else [])
        return (free or [[r.choice(t["close"])]]) + sig + [field(r, loc, it) for it in items], "\n"
    sents = []
    while items:
        k = r.choice([1, 1, 2, 3])
        chunk, items = items[:k], items[k:]
        sents.append(render(r, r.choice(t["say"]), loc, person, joined([field(r, loc, it) for it in chunk], ", ")))
    sents += free
    r.shuffle(sents)
    if frame == "crm":
        return [joined(([render(r, r.choice(t["about"]), loc, person)] if name else []) + sents)], "\n"
    if frame == "chat":
        lines = ([render(r, r.choice(t["greet"]), loc, person)] if name else []) + (sents or [[r.choice(t["close"])]])
        start = r.randint(8 * 60, 18 * 60)
        return [["[", (False, "time", f"{(start + 3 * i) // 60:02d}:{(start + 3 * i) % 60:02d}"),
                 f"] {t['who'][(i + bool(name)) % 2]}: "] + s for i, s in enumerate(lines)], "\n"
    greet = name and r.random() < 0.6  # ticket: the name in the greeting, the signature or both
    sign = name and (not greet or r.random() < 0.4)
    lines = [render(r, r.choice(t["greet"]), loc, person) if greet else [r.choice(t["open"])]]
    lines += [joined(sents)] if sents else []
    return lines + [render(r, r.choice(t["sign"]), loc, person) if sign else [r.choice(t["close"])]], "\n"


def consistent(text, spans, pii, decoys):
    """Every occurrence of a pii value inside a pii span; no occurrence of a decoy touching one."""
    def occ(v):
        return [(m.start(), m.end()) for m in re.finditer(re.escape(v), text)]
    inside = all(any(s <= a and b <= e for s, e in spans) for _, v in pii for a, b in occ(v))
    return inside and not any(a < e and s < b for _, v in decoys for a, b in occ(v) for s, e in spans)


def build(r, loc, person):
    weights = {k: 1.0 for k in PII_KINDS if k != "person_name"}
    weights["ssn"] = 3.0 if loc == "en_us" else 0.4
    weights["national_id"] = 0.0 if loc == "en_us" else 1.2
    kinds = []
    for _ in range(r.choices([0, 1, 2, 3], [10, 35, 35, 20])[0]):
        kinds.append(r.choices([k for k in weights if k not in kinds],
                               [w for k, w in weights.items() if k not in kinds])[0])
    if kinds and r.random() < 0.1:
        kinds.append(r.choice(kinds))  # a second value of the same kind
    decoys = r.sample(FIELD_DECOYS + list(FREE_SLOT), r.choices([0, 1, 2, 3, 4], [10, 25, 30, 20, 15])[0])
    lines, sep = compose(r, loc, person, kinds, decoys, r.random() < 0.6 or not kinds)
    text, spans, pii, dec = "", [], {}, {}
    for i, line in enumerate(lines):
        text += sep if i else ""
        for p in line:
            if isinstance(p, str):
                text += p[1:] if p.startswith(".") and text.endswith(".") else p  # "St.." -> "St."
                continue
            is_pii, key, value = p
            if is_pii:
                spans.append((len(text), len(text) + len(value)))
            (pii if is_pii else dec).setdefault((key, value), None)
            text += value
    if not consistent(text, spans, pii, dec):
        return None
    return {"locale": loc, "text": text, "pii": [{"kind": k, "value": v} for k, v in pii],
            "decoys": [{"cat": c, "value": v} for c, v in dec]}


def make_people(r):
    people = {}
    for loc in LOCALES:
        first, last = L10N[loc]["first"], L10N[loc]["last"]
        chosen = list(zip(first, r.sample(last, len(last))))  # every first and last name at least once
        rest = [(f, l) for f in first for l in last if (f, l) not in chosen]
        people[loc] = chosen + r.sample(rest, PEOPLE_PER_LOCALE - len(chosen))
    return people


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2400, help="snippets (default 2400)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--out", help="output file (default stdout)")
    a = ap.parse_args()
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head
    r = random.Random(a.seed)
    people = make_people(r)
    out = open(a.out, "w", encoding="utf-8") if a.out else sys.stdout
    out.write(json.dumps({"known_names": [f"{f} {l}" for loc in LOCALES for f, l in people[loc]]},
                         ensure_ascii=False) + "\n")
    for i in range(a.n):
        loc, snip = LOCALES[i % len(LOCALES)], None
        while snip is None:
            snip = build(r, loc, r.choice(people[loc]))
        out.write(json.dumps(snip, ensure_ascii=False) + "\n")
    if a.out:
        out.close()


if __name__ == "__main__":
    main()
